"""rollups per queue x template x day (backfilled from the job rows); job indexes for the pages' filters

Revision ID: c12rollups
Revises: c10status
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.orm import Session


revision = 'c12rollups'
down_revision = 'c10status'
branch_labels = None
depends_on = None

COUNTS = ['succeeded', 'failed', 'cancelled', 'lost']
SECONDS = ['core_seconds', 'wall_seconds']
TIMES = ['known_seconds', 'up_seconds', 'known_offline_seconds', 'up_offline_seconds']
JOB_INDEXES = {'ix_job_test_id': ['test_id', 'id'], 'ix_job_queue_id': ['queue_id', 'id'],
               'ix_job_created_at': ['created_at'], 'ix_job_ended_at': ['ended_at']}


def _key(*extra):
    return [sa.Column('queue_id', sa.Integer(), nullable=False),
            sa.Column('template', sa.String(length=128), nullable=False), *extra]


def _numbers(ints, floats):
    return ([sa.Column(n, sa.Integer(), nullable=False) for n in ints]
            + [sa.Column(n, sa.Double(), nullable=False) for n in floats])


def _fk(table):
    return sa.ForeignKeyConstraint(['queue_id'], ['queue.id'], name=op.f(f'fk_{table}_queue_id_queue'))


def upgrade():
    op.create_table('rollup', *_key(sa.Column('day', sa.Date(), nullable=False)), *_numbers(COUNTS, SECONDS + TIMES),
                    _fk('rollup'), sa.PrimaryKeyConstraint('queue_id', 'template', 'day', name=op.f('pk_rollup')))
    op.create_index('ix_rollup_day', 'rollup', ['day'])
    op.create_table('rollup_reason', *_key(sa.Column('day', sa.Date(), nullable=False),
                                           sa.Column('reason', sa.String(length=200), nullable=False)),
                    sa.Column('n', sa.Integer(), nullable=False), _fk('rollup_reason'),
                    sa.PrimaryKeyConstraint('queue_id', 'template', 'day', 'reason', name=op.f('pk_rollup_reason')))
    op.create_table('rollup_total', *_key(), *_numbers(COUNTS, SECONDS), _fk('rollup_total'),
                    sa.PrimaryKeyConstraint('queue_id', 'template', name=op.f('pk_rollup_total')))
    op.create_table('rollup_tail', *_key(sa.Column('ended_at', sa.DateTime(), nullable=False),
                                         sa.Column('ok', sa.Boolean(), nullable=False)), _fk('rollup_tail'),
                    sa.PrimaryKeyConstraint('queue_id', 'template', name=op.f('pk_rollup_tail')))
    with op.batch_alter_table('job', schema=None) as batch_op:
        for name, columns in JOB_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
        batch_op.create_index('ix_job_workdir_ended', ['ended_at'], unique=False,
                              sqlite_where=sa.text("workdir != ''"), postgresql_where=sa.text("workdir != ''"))
    from hcflask.engine.data.rollups import rebuild

    rebuild(Session(bind=op.get_bind()), later_tables=False)


def downgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_workdir_ended')
        for name in JOB_INDEXES:
            batch_op.drop_index(name)
    for table in ('rollup_tail', 'rollup_total', 'rollup_reason'):
        op.drop_table(table)
    op.drop_index('ix_rollup_day', table_name='rollup')
    op.drop_table('rollup')

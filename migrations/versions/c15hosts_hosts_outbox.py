"""hosts and their leases, the outbox of robot actions, tick and backend health keyed by host

Revision ID: c15hosts
Revises: c12rollups
Create Date: 2026-11-25 20:45:00

tick_run and backend_health only hold the latest heartbeat and outage of
each tick and backend: they are recreated with the host in their key (the
next tick fills them again) rather than migrated row by row.
"""
from alembic import op
import sqlalchemy as sa


revision = 'c15hosts'
down_revision = 'c12rollups'
branch_labels = None
depends_on = None


def _tick_run(keyed_by_host: bool) -> None:
    key = ['host', 'name'] if keyed_by_host else ['name']
    op.create_table('tick_run',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('seconds', sa.Double(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint(*key, name=op.f('pk_tick_run'))
    )


def _backend_health(keyed_by_host: bool) -> None:
    columns = [sa.Column('host', sa.String(length=255), nullable=False)] if keyed_by_host else []
    key = ['host', 'backend'] if keyed_by_host else ['backend']
    op.create_table('backend_health',
    *columns,
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('available', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('down_since', sa.DateTime(), nullable=True),
    sa.Column('checked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint(*key, name=op.f('pk_backend_health'))
    )


def upgrade():
    op.create_table('host',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('core', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_host'))
    )
    op.create_table('robot_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('config_key', sa.String(length=128), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['robot_event.id'], name=op.f('fk_robot_delivery_event_id_robot_event')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_robot_delivery'))
    )
    with op.batch_alter_table('robot_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_robot_delivery_state_next', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_robot_delivery_event_id'), ['event_id'], unique=False)
    op.drop_table('tick_run')
    op.drop_table('backend_health')
    _tick_run(keyed_by_host=True)
    _backend_health(keyed_by_host=True)


def downgrade():
    op.drop_table('tick_run')
    op.drop_table('backend_health')
    _tick_run(keyed_by_host=False)
    _backend_health(keyed_by_host=False)
    with op.batch_alter_table('robot_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_robot_delivery_event_id'))
        batch_op.drop_index('ix_robot_delivery_state_next')
    op.drop_table('robot_delivery')
    op.drop_table('host')

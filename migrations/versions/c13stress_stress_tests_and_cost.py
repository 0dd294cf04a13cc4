"""stress tests (template kind + stress section, a test's aborted queues),
the payload's CPU time per job, a partition's CPUs per queue

Revision ID: c13stress
Revises: c14admin
Create Date: 2026-11-25 20:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c13stress"
down_revision = "c14admin"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("template", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="functional"))
        batch_op.add_column(sa.Column("stress", sa.JSON(), nullable=True))
    with op.batch_alter_table("test", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aborted", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpu_seconds", sa.Double(), nullable=True))
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpus", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.drop_column("cpus")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("cpu_seconds")
    with op.batch_alter_table("test", schema=None) as batch_op:
        batch_op.drop_column("aborted")
    with op.batch_alter_table("template", schema=None) as batch_op:
        batch_op.drop_column("stress")
        batch_op.drop_column("kind")

"""Compare-and-set job writes and fenced hosts: job.version and job.claimed_by,
test.epoch and test.epoch_at (the fencing token of a host's hold on a test),
host.clock_offset (the host's clock against the database's)

Revision ID: c20hosts
Revises: c22inputs
Create Date: 2026-12-03 14:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c20hosts"
down_revision = "c22inputs"
branch_labels = None
depends_on = None


def upgrade():
    # plain ADD COLUMNs with server defaults: no table copy on SQLite, no rewrite on PostgreSQL
    op.add_column("job", sa.Column("claimed_by", sa.String(128), nullable=False, server_default=""))
    op.add_column("job", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("test", sa.Column("epoch", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("test", sa.Column("epoch_at", sa.DateTime(), nullable=True))
    op.add_column("host", sa.Column("clock_offset", sa.Double(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("host") as batch_op:
        batch_op.drop_column("clock_offset")
    with op.batch_alter_table("test") as batch_op:
        batch_op.drop_column("epoch_at")
        batch_op.drop_column("epoch")
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("claimed_by")

"""not_applicable outcome: a count beside succeeded/failed/cancelled/lost in the per-test
rollup, so probe jobs that did not apply are shown apart (the day and all-time rollups only
add their seconds: a not-applicable job says nothing about the queue)

Revision ID: c24probes
Revises: c19outbox
Create Date: 2026-12-03 14:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c24probes"
down_revision = "c19outbox"
branch_labels = None
depends_on = None

TABLES = ("rollup_test",)


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("not_applicable", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("not_applicable")

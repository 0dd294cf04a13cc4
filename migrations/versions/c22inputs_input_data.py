"""input data (issue 22): template.inputs, job.inputs (the files a job reads),
test.input_notes (queues that get no jobs for want of a replica)

Revision ID: c22inputs
Revises: c23auth
Create Date: 2026-12-03 14:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c22inputs"
down_revision = "c23auth"
branch_labels = None
depends_on = None


def upgrade():
    # plain ADD COLUMN on every dialect (no batch copy of the job table)
    op.add_column("template", sa.Column("inputs", sa.JSON(), nullable=True))
    op.add_column("job", sa.Column("inputs", sa.JSON(), nullable=True))
    op.add_column("test", sa.Column("input_notes", sa.JSON(), server_default="{}", nullable=False))


def downgrade():
    for table, column in (("test", "input_notes"), ("job", "inputs"), ("template", "inputs")):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column(column)

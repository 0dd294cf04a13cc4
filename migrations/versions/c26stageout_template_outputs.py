"""stage-out (issue 22 item 6): template.outputs, the RSE and rule lifetime of each job's output file

Revision ID: c26stageout
Revises: c20hosts
Create Date: 2026-12-03 15:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c26stageout"
down_revision = "c20hosts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("template", sa.Column("outputs", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("template") as batch_op:
        batch_op.drop_column("outputs")

"""The core role as a lease: core_lease (holder, epoch, lease_until on the database's clock)

Revision ID: c27core
Revises: c26stageout
Create Date: 2026-12-03 15:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c27core"
down_revision = "c26stageout"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "core_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column("renewed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_lease")),
    )


def downgrade():
    op.drop_table("core_lease")

"""queue.deleted_at: a deleted queue with job history stays, hidden

Revision ID: c14admin
Revises: c11security
Create Date: 2026-11-25 20:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c14admin'
down_revision = 'c11security'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('queue', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('queue', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')

"""Roles and sign-in sources for users, a display time zone; the audit log
records refused writes too (``reason``) and where they came from (``via``).

``user.is_admin`` becomes ``user.role``: every existing user was an admin,
so ``is_admin`` true maps to ``admin``, false to ``viewer``.

Revision ID: c23auth
Revises: c24probes
Create Date: 2026-12-03 14:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c23auth"
down_revision = "c24probes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user") as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="viewer"))
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default="local"))
        batch_op.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=False, server_default=""))
    op.execute(sa.text("UPDATE \"user\" SET role = CASE WHEN is_admin THEN 'admin' ELSE 'viewer' END"))
    with op.batch_alter_table("user") as batch_op:
        batch_op.drop_column("is_admin")
        for column in ("role", "source", "disabled", "timezone"):
            batch_op.alter_column(column, server_default=None)
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=8), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.alter_column("via", server_default=None)
        batch_op.alter_column("reason", server_default=None)


def downgrade():
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.drop_column("reason")
        batch_op.drop_column("via")
    with op.batch_alter_table("user") as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute(sa.text("UPDATE \"user\" SET is_admin = (role = 'admin')"))
    with op.batch_alter_table("user") as batch_op:
        batch_op.alter_column("is_admin", server_default=None)
        for column in ("timezone", "disabled", "source", "role"):
            batch_op.drop_column(column)

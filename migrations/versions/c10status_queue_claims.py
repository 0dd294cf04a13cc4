"""queue status: claims by source, a version for compare-and-set, job.judged_at

Revision ID: c10status
Revises: 5eee05e7f656
Create Date: 2026-11-25 20:40:00

Existing statuses become claims: ``excluded`` a robot claim, ``offline`` and
``test`` an admin claim, so the derived status is what it was.
"""
from alembic import op
import sqlalchemy as sa


revision = "c10status"
down_revision = "5eee05e7f656"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "queue_claim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("job_ids", sa.JSON(), nullable=False),
        sa.Column("failure", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_by", sa.String(length=128), nullable=True),
        sa.Column("release_rule", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["queue_id"], ["queue.id"], name=op.f("fk_queue_claim_queue_id_queue")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_claim")),
    )
    with op.batch_alter_table("queue_claim", schema=None) as batch_op:
        batch_op.create_index("ix_queue_claim_queue_released", ["queue_id", "released_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_queue_claim_released_at"), ["released_at"], unique=False)
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judged_at", sa.DateTime(), nullable=True))
    op.execute(
        "INSERT INTO queue_claim (queue_id, source, status, actor, reason, job_ids, failure, created_at) "
        "SELECT id, CASE WHEN status = 'excluded' THEN 'robot' ELSE 'admin' END, status, 'migration', "
        "'status before claims', '[]', '', COALESCE(status_changed_at, created_at) FROM queue "
        "WHERE status IN ('excluded', 'offline', 'test')"
    )


def downgrade():
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("judged_at")
    with op.batch_alter_table("queue", schema=None) as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("queue_claim", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_claim_released_at"))
        batch_op.drop_index("ix_queue_claim_queue_released")
    op.drop_table("queue_claim")

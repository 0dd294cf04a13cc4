"""per-test rollup: final job counts per test × queue (the test lists and pages
read these instead of counting job rows), backfilled from the job rows; an
index for a test's metric plots (newest jobs first) and one for the robot's
newest outcomes per queue × test; the tally of job rows
retention deleted, per final state (the all-time rollups less the rows left)

Revision ID: c16testcounts
Revises: c13stress
Create Date: 2026-11-25 23:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c16testcounts"
down_revision = "c13stress"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_job_test_ended", "job", ["test_id", "ended_at"])
    op.create_index("ix_job_queue_test_ended", "job", ["queue_id", "test_id", "ended_at"])
    op.create_table(
        "rollup_test",
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["queue_id"], ["queue.id"], name=op.f("fk_rollup_test_queue_id_queue")),
        sa.ForeignKeyConstraint(["test_id"], ["test.id"], name=op.f("fk_rollup_test_test_id_test")),
        sa.PrimaryKeyConstraint("test_id", "queue_id", name=op.f("pk_rollup_test")),
    )
    op.execute("""
        INSERT INTO rollup_test (test_id, queue_id, succeeded, failed, cancelled, lost)
        SELECT test_id, queue_id,
               SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END),
               SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END),
               SUM(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END),
               SUM(CASE WHEN state = 'lost' THEN 1 ELSE 0 END)
        FROM job WHERE state IN ('succeeded', 'failed', 'cancelled', 'lost')
        GROUP BY test_id, queue_id""")
    op.create_table(
        "tally",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tally")),
    )
    for state in ("succeeded", "failed", "cancelled", "lost"):  # what the rollups hold less what is left
        op.execute(f"""
            INSERT INTO tally (name, n)
            SELECT 'job_rows_purged:{state}',
                   (SELECT COALESCE(SUM({state}), 0) FROM rollup_total)
                   - (SELECT COUNT(*) FROM job WHERE state = '{state}')""")  # noqa: S608 - fixed words


def downgrade():
    op.drop_table("tally")
    op.drop_index("ix_job_queue_test_ended", table_name="job")
    op.drop_index("ix_job_test_ended", table_name="job")
    op.drop_table("rollup_test")

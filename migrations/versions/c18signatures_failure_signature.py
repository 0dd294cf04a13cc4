"""job.failure_signature: the failure reason without its variable parts, what the robot
groups by; the reason rollup is re-keyed from the old path-and-number key to signatures

Job rows are not backfilled: a job judged before this revision has an empty
signature, and the robot and the replay compute it from its reason when they
read it (the same function, so the result is the same).

Revision ID: c18signatures
Revises: c17jobtemplate
Create Date: 2026-12-03 15:00:00

"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from hcflask.signatures import signature

# revision identifiers, used by Alembic.
revision = "c18signatures"
down_revision = "c17jobtemplate"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("job", sa.Column("failure_signature", sa.String(length=200), nullable=False, server_default=""))
    bind = op.get_bind()
    names = dict(bind.execute(sa.text("SELECT id, name FROM queue")).all())
    sums: dict[tuple, int] = defaultdict(int)
    for queue_id, template, day, reason, n in bind.execute(
            sa.text("SELECT queue_id, template, day, reason, n FROM rollup_reason")):
        key = signature(reason, names.get(queue_id)) or "(no reason)"
        sums[(queue_id, template, day, key)] += n
    bind.execute(sa.text("DELETE FROM rollup_reason"))
    if sums:
        bind.execute(sa.text("INSERT INTO rollup_reason (queue_id, template, day, reason, n) "
                             "VALUES (:q, :t, :d, :r, :n)"),
                     [{"q": q, "t": t, "d": d, "r": r, "n": n} for (q, t, d, r), n in sums.items()])


def downgrade():
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_column("failure_signature")

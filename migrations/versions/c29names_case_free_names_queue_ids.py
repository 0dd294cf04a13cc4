"""Names unique without regard to case (queue.name_key, template.name_key); tests keep their queues by id

Revision ID: c29names
Revises: c27core
Create Date: 2026-12-03 18:00:00

Backfill: ``name_key`` is the lower-case name.  Rows that already clash without
regard to case (``SITE-A`` and ``site-a``, possible before this revision) keep
working: the later ones get ``<key>#<id>`` (``#`` is in no valid name), so the
upgrade never fails on existing data; renaming such a row writes its true key.
``test.queue_ids``: the queues each test's jobs ran on, matched to its
``queue_names`` by the jobs' queues first, then by the queue's name.
"""
import json

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c29names"
down_revision = "c27core"
branch_labels = None
depends_on = None



def _keys(bind, table):
    seen = set()
    for ident, name in bind.execute(sa.text(f"SELECT id, name FROM {table} ORDER BY id")).all():
        key = name.lower()
        if key in seen:
            key = f"{key}#{ident}"
        seen.add(key)
        bind.execute(sa.text(f"UPDATE {table} SET name_key = :key WHERE id = :id"), {"key": key, "id": ident})


def _queue_ids(bind):
    queues = bind.execute(sa.text("SELECT id, name, deleted_at FROM queue")).all()
    live = {name: ident for ident, name, deleted in queues if deleted is None}
    by_id = {ident: name for ident, name, _ in queues}
    for ident, raw in bind.execute(sa.text("SELECT id, queue_names FROM test")).all():
        names = json.loads(raw) if isinstance(raw, str) else (raw or [])
        used = [q for (q,) in bind.execute(sa.text(
            "SELECT DISTINCT queue_id FROM job WHERE test_id = :t ORDER BY queue_id"), {"t": ident}).all()]
        ids = []
        for name in names:
            # a job's queue that had this name (its row possibly renamed <name>.deleted-<id> since)
            found = next((q for q in used if by_id.get(q) == name
                          or by_id.get(q, "").startswith(f"{name}.deleted-")), None)
            ids.append(found if found is not None else live.get(name))
        bind.execute(sa.text("UPDATE test SET queue_ids = :ids WHERE id = :id").bindparams(
            sa.bindparam("ids", type_=sa.JSON())), {"ids": ids, "id": ident})


def upgrade():
    # plain ADD COLUMN (NOT NULL with a default) and CREATE INDEX: SQLite need not copy the tables,
    # which it could not do for queue anyway (jobs, claims and bands point at it)
    for table in ("queue", "template"):
        op.add_column(table, sa.Column("name_key", sa.String(128), server_default="", nullable=False))
    bind = op.get_bind()
    _keys(bind, "queue")
    _keys(bind, "template")
    for table in ("queue", "template"):
        op.create_index(op.f(f"ix_{table}_name_key"), table, ["name_key"], unique=True)
    op.add_column("test", sa.Column("queue_ids", sa.JSON(), server_default="[]", nullable=False))
    _queue_ids(bind)


def downgrade():
    op.drop_column("test", "queue_ids")
    for table in ("template", "queue"):
        op.drop_index(op.f(f"ix_{table}_name_key"), table_name=table)
        op.drop_column(table, "name_key")

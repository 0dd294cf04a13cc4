"""A test's queues as they were: attached by id, shown by the name they had then.

A test keeps the ids and names of its queues from the moment it started
(``Test.queue_ids``, ``Test.queue_names``).  Every page, report and API answer
about a test goes through :func:`queue_refs`, so a queue that was deleted
shows as "site-a (deleted)", a renamed one as "site-a (now site-b)", and a new
queue that took a deleted one's name never inherits its history.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from flask import g, has_request_context
from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import Queue, Test
from hcflask.states import TestState


@dataclasses.dataclass(frozen=True)
class QueueRef:
    """One queue of a test: ``id`` None for a template's pattern that no queue matched yet."""

    id: int | None
    #: the name the queue had when the test started
    name: str
    #: the queue's name now, None once it was deleted
    current: str | None = None
    status: str | None = None
    deleted: bool = False

    @property
    def label(self) -> str:
        """The name then, with what became of the queue since."""
        if self.deleted:
            return f"{self.name} (deleted)"
        if self.current is not None and self.current != self.name:
            return f"{self.name} (now {self.current})"
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "current": self.current, "deleted": self.deleted}


def _rows(ids: list[int]) -> dict[int, Queue]:
    """Queues by id, read once per request (a page lists many tests)."""
    cache: dict[int, Queue] = g.setdefault("hc_queue_rows", {}) if has_request_context() else {}
    missing = [i for i in ids if i not in cache]
    if missing:
        cache.update({q.id: q for q in db.session.scalars(select(Queue).where(Queue.id.in_(missing)))})
    return cache


def _planned(test: Test) -> list[QueueRef]:
    """A test that has not started: its template's names and patterns; while it is still to start, a
    name that is a queue's now is that queue (it will run there).  One that ended unstarted ran nowhere."""
    patterns = [str(p) for p in test.snapshot.get("queues") or []]
    live: dict[str, Queue] = {}
    if test.state == TestState.SCHEDULED.value:
        live = {q.name: q for q in db.session.scalars(Queue.live().where(Queue.name.in_(patterns)))}
    return [QueueRef(live[p].id, p, p, live[p].status) if p in live else QueueRef(None, p) for p in patterns]


def queue_refs(test: Test) -> list[QueueRef]:
    """The test's queues by id and their name then; a test not started yet: see :func:`_planned`."""
    if not test.queue_names:
        return _planned(test)
    ids = list(test.queue_ids or [])
    rows = _rows([i for i in ids if i is not None])
    refs = []
    for i, name in enumerate(test.queue_names):
        row = rows.get(ids[i]) if i < len(ids) else None
        if row is None:  # a row gone for good (deleted before it had history) or an unknown id
            refs.append(QueueRef(ids[i] if i < len(ids) else None, name, deleted=True))
        elif row.deleted_at is not None:
            refs.append(QueueRef(row.id, name, deleted=True))
        else:
            refs.append(QueueRef(row.id, name, row.name, row.status))
    return refs

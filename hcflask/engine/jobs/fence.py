"""Fencing: a host writes the jobs of a test only under the epoch it holds it by.

A host that was paused (a frozen VM, SIGSTOP, a network cut to the
database) wakes up in the middle of a tick with jobs loaded from before its
tests were adopted.  Each test carries an epoch, a number that only grows:
adoption and ``hc test move`` bump it (see :func:`hcflask.engine.service.hosts.adopt`).
A tick starts with :func:`hold`, which records the epochs of this host's
tests in the session; every flush that writes a job of one of them first
re-reads those tests (``FOR SHARE`` on PostgreSQL, so an adoption waits for
the flush's transaction rather than slipping between the check and the
commit) and raises :class:`Fenced` if another host now holds one.  The
tick then rolls back and drops what it held (:func:`report` logs it once);
the adopting host looks the jobs up by name.

Together with the jobs' own compare-and-set (``Job.version``), a late write
matches no row: the store itself refuses it, as a fencing token should.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from itertools import chain
from typing import Any

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from hcflask.extensions import db
from hcflask.models import Job, Test

KEY = "hc_fence"
log = logging.getLogger("hcflask.engine")


def my_host() -> str:
    return str(current_app.config["HOST_NAME"])


class Fenced(RuntimeError):
    """Another host took over a test this tick was writing for."""

    def __init__(self, test_id: int, epoch: int, host: str | None, at: datetime | None) -> None:
        when = f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "an unknown time"
        super().__init__(f"fenced: tests {test_id} adopted by {host or 'nobody'} at {when}")
        self.test_id, self.epoch, self.host, self.at = test_id, epoch, host, at


def hold(kind: str) -> dict[int, int]:
    """At the start of a tick of ``kind``: the tests this host drives now, and under which
    epoch.  A test the previous tick of this kind held that another host took over meanwhile
    (this host was paused, say, between two ticks, or its last write failed for another
    reason) is reported as fenced here, so the host says so even if it had nothing to write."""
    held = {i: e for i, e in db.session.execute(select(Test.id, Test.epoch).where(Test.host == my_host()))}
    db.session.info[KEY] = (my_host(), held)
    previous = current_app.extensions.setdefault("hc_held", {})
    gone = {i: e for i, e in previous.get(kind, {}).items() if i not in held}
    previous[kind] = held
    if gone:
        for test_id, owner, epoch, at in db.session.execute(select(
                Test.id, Test.host, Test.epoch, Test.epoch_at).where(Test.id.in_(gone))):
            if epoch > gone[test_id]:
                report(Fenced(test_id, epoch, owner, at))
    return held


def _test_id(job: Job) -> int | None:
    if job.test_id is not None:
        return job.test_id
    test = job.__dict__.get("test")  # a new job made from its test: the id is not copied until flush
    return test.id if test is not None else None


@event.listens_for(Session, "before_flush")
def _check(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse the flush if a test whose jobs it writes is no longer held at its epoch."""
    if KEY not in session.info:
        return
    check(session, {_test_id(obj) for obj in chain(session.new, session.dirty) if isinstance(obj, Job)})


def check(session: Session, test_ids: Iterable[int | None]) -> None:
    """Raise :class:`Fenced` if one of ``test_ids`` this tick holds is no longer held at its epoch.

    The flush hook calls it for the jobs it writes; a tick that writes job rows without the
    ORM's flush (a bulk INSERT) calls it itself, first, in the same transaction."""
    if KEY not in session.info:
        return
    host, held = session.info[KEY]
    ids = {i for i in test_ids if i in held}
    if not ids:
        return
    query = select(Test.id, Test.host, Test.epoch, Test.epoch_at).where(Test.id.in_(ids))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    for test_id, owner, epoch, at in session.execute(query):
        if owner != host or epoch != held[test_id]:
            raise Fenced(test_id, epoch, owner, at)


def report(exc: Fenced) -> None:
    """Log a fencing once per test and epoch (every later tick would otherwise repeat it)."""
    seen = current_app.extensions.setdefault("hc_fenced", set())
    if (exc.test_id, exc.epoch) in seen:
        return
    seen.add((exc.test_id, exc.epoch))
    log.error("%s; this host (%s) dropped the work its tick held for them", exc, my_host())

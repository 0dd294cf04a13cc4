"""The one owner of queue status (DESIGN.md "Queue status: one owner").

A queue's status is derived from *claims by source*, highest first:

=============  =========================  ====================================
source         statuses                   set and dropped by
=============  =========================  ====================================
``admin``      ``offline``, ``test``      people (UI, API, CLI) and imports
``robot``      ``excluded``               the robot pass (and its rollback)
``performance`` ``excluded``              the performance bands
=============  =========================  ====================================

No active claim means ``online``.  An admin's ``online`` is a *manual
release*: it drops the admin claim and every robot and performance claim
(recorded with ``release_rule = "admin"``; anti-flapping starts from it).
Admin claims persist until an admin sets ``online``.  People never set
``excluded`` (a :class:`ValidationError` naming ``status``), and the robot
and the bands never add or drop a claim on a queue an admin holds.

Every write is compare-and-set: ``UPDATE queue SET version = version + 1
... WHERE id = :id AND version = :seen``, in a transaction of its own with
the claim rows, the :class:`QueueEvent` and the caller's records (a
``RobotEvent``).  A writer that loses (zero rows: someone committed in
between) rolls back, re-reads, and asks its ``plan`` again with
``conflict=True``; the robot's plans then give up unless nothing that
matters changed -- an admin's change is never overwritten.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from hcflask.engine.service.clock import db_now
from hcflask.extensions import db
from hcflask.models import Queue, QueueClaim, QueueEvent, ValidationError
from hcflask.states import QueueStatus

#: claim sources, highest priority first
SOURCES = ("admin", "robot", "performance")
ADMIN_STATUSES = (QueueStatus.ONLINE.value, QueueStatus.OFFLINE.value, QueueStatus.TEST.value)
ATTEMPTS = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """What a writer read of one queue: the row's version and its active claims."""

    queue_id: int
    name: str
    version: int
    status: str
    changed_at: datetime | None
    claims: tuple[QueueClaim, ...]

    def claim(self, source: str) -> QueueClaim | None:
        return next((c for c in self.claims if c.source == source), None)


@dataclasses.dataclass(slots=True)
class Plan:
    """Claims to add and release, the history line's words, and rows written with them."""

    actor: str
    reason: str = ""
    add: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    release: list[tuple[QueueClaim, str]] = dataclasses.field(default_factory=list)
    rule: str | None = None
    job_ids: Sequence[int] = ()
    records: list[Any] = dataclasses.field(default_factory=list)
    #: rows that depend on the outcome (old, new status), such as the outbox rows of the
    #: caller's event: they commit with the claim, or not at all
    then: Callable[[str, str], Sequence[Any]] | None = None
    #: other columns of the queue row written by the same compare-and-set (a deletion's mark and name)
    row: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a write: done, or why not; and the status before and after."""

    done: bool
    old: str
    new: str
    why: str = ""


def derive(claims: Iterable[Any]) -> str:
    """The status the highest-priority active claim gives (``online`` with none)."""
    by_source = {c.source: c.status for c in claims}
    return next((by_source[s] for s in SOURCES if s in by_source), QueueStatus.ONLINE.value)


def read(queue_id: int) -> Seen:
    """The queue's current version and active claims, fresh from the database."""
    row = db.session.execute(select(Queue.name, Queue.version, Queue.status, Queue.status_changed_at)
                             .where(Queue.id == queue_id)).one()
    claims = db.session.scalars(select(QueueClaim).where(
        QueueClaim.queue_id == queue_id, QueueClaim.released_at.is_(None)).order_by(QueueClaim.id)
        .execution_options(populate_existing=True))
    return Seen(queue_id, row.name, row.version, row.status, row.status_changed_at, tuple(claims))


def active_claims(queue_ids: Iterable[int] | None = None) -> dict[int, list[QueueClaim]]:
    """Active claims per queue id (for pages and the robot's snapshot): one query."""
    query = select(QueueClaim).where(QueueClaim.released_at.is_(None)).order_by(QueueClaim.id)
    if queue_ids is not None:
        query = query.where(QueueClaim.queue_id.in_(list(queue_ids)))
    out: dict[int, list[QueueClaim]] = {}
    for claim in db.session.scalars(query):
        out.setdefault(claim.queue_id, []).append(claim)
    return out


def _write(seen: Seen, plan: Plan, now: datetime) -> str | None:
    """Apply ``plan`` if the row still has ``seen.version``; the new status, or None if lost."""
    released = {id(c) for c, _ in plan.release}
    remaining = [c for c in seen.claims if id(c) not in released]
    new = derive([*remaining, *(QueueClaim(**a) for a in plan.add)])
    changed = new != seen.status
    values: dict[str, Any] = {**plan.row, "version": Queue.version + 1, "status": new}
    if changed:
        values["status_changed_at"] = now
    result = db.session.execute(update(Queue).where(Queue.id == seen.queue_id, Queue.version == seen.version)
                                .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    for claim, rule in plan.release:
        claim.released_at, claim.released_by, claim.release_rule = now, plan.actor, rule
    for values_ in plan.add:
        db.session.add(QueueClaim(queue_id=seen.queue_id, created_at=now, **values_))
    if changed:
        db.session.add(QueueEvent(queue_id=seen.queue_id, time=now, old_status=seen.status, new_status=new,
                                  actor=plan.actor, reason=plan.reason, rule=plan.rule, job_ids=list(plan.job_ids)))
    for record in plan.records:
        db.session.add(record)
    if plan.then is not None:
        db.session.add_all(plan.then(seen.status, new))
    return new


def change(queue_id: int, plan: Callable[[Seen, bool], Plan | str], expected: int | None = None,
           now: datetime | None = None) -> Written:
    """Read, plan, compare-and-set, commit; on a lost race re-read and re-plan.

    ``plan(seen, conflict)`` returns a :class:`Plan`, or a sentence saying
    why there is nothing to do.  ``expected`` is the version the caller
    decided on (the robot's snapshot): a different one counts as a conflict
    from the start.  Pending work in the session is committed first, so a
    lost race rolls back nothing but this write.
    """
    db.session.commit()
    now = now or db_now()  # release times are compared with the robot's pass time on other hosts
    for _ in range(ATTEMPTS):
        seen = read(queue_id)
        planned = plan(seen, expected is not None and seen.version != expected)
        if isinstance(planned, str):
            db.session.rollback()
            return Written(False, seen.status, seen.status, planned)
        new = _write(seen, planned, now)
        if new is not None:
            db.session.commit()
            return Written(True, seen.status, new)
        db.session.rollback()
        expected = seen.version
    return Written(False, "", "", f"gave up after {ATTEMPTS} lost races")


def admin_set(queue: Queue, status: str, actor: str, reason: str = "") -> Written:
    """An admin's status (UI, API, CLI, imports): ``online``, ``offline`` or ``test``, never ``excluded``."""
    if status == QueueStatus.EXCLUDED.value:
        raise ValidationError("status", "only the robot and the performance bands set excluded; "
                              "an admin sets online, offline or test")
    if status not in ADMIN_STATUSES:
        raise ValidationError("status", f"unknown status {status!r} (one of: {', '.join(ADMIN_STATUSES)})")
    reason = reason or f"set by {actor}"

    def plan(seen: Seen, _conflict: bool) -> Plan | str:
        mine = seen.claim("admin")
        if status == QueueStatus.ONLINE.value:
            if not seen.claims:
                return f"{seen.name} is online already"
            return Plan(actor, reason, release=[(c, "admin") for c in seen.claims], rule="manual release")
        if mine is not None and mine.status == status:
            return f"{seen.name} is {status} already"
        return Plan(actor, reason, add=[{"source": "admin", "status": status, "actor": actor, "reason": reason}],
                    release=[(mine, "admin")] if mine else [])

    return change(queue.id, plan)


def exclude(queue_id: int, source: str, actor: str, reason: str, rule: str | None, job_ids: Sequence[int],
            failure: str = "", expected: int | None = None, seen_at: datetime | None = None,
            records: Sequence[Any] = (), now: datetime | None = None,
            then: Callable[[str, str], Sequence[Any]] | None = None) -> Written:
    """The robot's or the bands' exclusion claim; never under an admin's claim.

    On a conflict the exclusion still goes ahead only if the status and the
    time it last changed are what the caller decided on (``seen_at``): a
    lower claim came or went, nothing an admin did.
    """

    def plan(seen: Seen, conflict: bool) -> Plan | str:
        admin = seen.claim("admin")
        if admin is not None:
            return f"an admin holds {seen.name} ({admin.status})"
        if seen.claim(source) is not None:
            return f"{seen.name} is excluded by {source} already"
        if conflict and (seen.status != QueueStatus.ONLINE.value or seen.changed_at != seen_at):
            return f"{seen.name} changed to {seen.status} since the decision"
        return Plan(actor, reason, rule=rule, job_ids=job_ids, records=list(records), then=then,
                    add=[{"source": source, "status": QueueStatus.EXCLUDED.value, "actor": actor, "reason": reason,
                          "rule": rule, "job_ids": list(job_ids), "failure": failure}])

    return change(queue_id, plan, expected, now)


def release(queue_id: int, source: str, actor: str, reason: str, rule: str, job_ids: Sequence[int] = (),
            expected: int | None = None, records: Sequence[Any] = (), now: datetime | None = None,
            then: Callable[[str, str], Sequence[Any]] | None = None) -> Written:
    """Drop ``source``'s exclusion claim (recover, rollback, band closed); never under an admin's claim."""

    def plan(seen: Seen, conflict: bool) -> Plan | str:
        mine = seen.claim(source)
        if mine is None:
            return f"{seen.name} has no {source} claim"
        if seen.claim("admin") is not None:
            return f"an admin holds {seen.name}"
        return Plan(actor, reason, release=[(mine, rule)], rule=rule, job_ids=job_ids, records=list(records),
                    then=then)

    return change(queue_id, plan, expected, now)

"""Writing many jobs in one flush as a few statements, with the same guarantees.

The ORM writes a versioned row (``Job.version``, the compare-and-set of
issue 20) with one ``UPDATE ... WHERE id = :id AND version = :seen`` per job,
and inserts each event and metric row on its own to learn its id: at 500 jobs
in flight a tick spent most of its time in those round trips.  A
``before_flush`` hook does the same work in bulk:

* the jobs changed in the flush are grouped by the set of columns they change,
  and each group is one ``executemany`` of the same compare-and-set UPDATE
  (``version = :seen`` in the WHERE clause, ``version + 1`` in the SET).  If
  fewer rows match than were sent, a job changed under the flush:
  :class:`~sqlalchemy.orm.exc.StaleDataError`, as the ORM raises, and the
  transaction is rolled back by its caller;
* the event and metric rows of saved jobs (:meth:`Job.add_row
  <hcflask.models.Job.add_row>`) are inserted with one ``executemany`` per
  kind, before the jobs' UPDATE, in the same transaction.

The hook runs after the fencing check (:mod:`hcflask.engine.jobs.fence`) and the
rollups (:mod:`hcflask.engine.data.rollups`), which read the flush's changes: they
are imported first, so their hooks are registered first, and SQLAlchemy calls
``before_flush`` hooks in that order.  A flush of one job is left to the ORM.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, event, insert, inspect, update
from sqlalchemy.orm import InstanceState, Session, attributes
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import ClauseElement

from hcflask.engine.data import rollups  # noqa: F401 - their before_flush hooks must run before this one
from hcflask.engine.jobs import fence  # noqa: F401 - (the same)
from hcflask.models import Job, utcnow
from hcflask.models.job import PENDING_ROWS

TABLE: Table = Job.__table__  # type: ignore[assignment]
#: column attributes of a job (relationships to its test and queue change its columns too: left to the ORM)
COLUMNS = frozenset(p.key for p in inspect(Job).column_attrs)
MANY_TO_ONE = frozenset(r.key for r in inspect(Job).relationships if r.direction.name == "MANYTOONE")


def changes(job: Job) -> dict[str, Any] | None:
    """The columns the flush would write for ``job`` and their new values; None where the
    ORM must write it (a changed test or queue, an SQL expression, an unloaded version).

    Read from the job's committed values directly rather than through attribute history:
    a judged job has a dozen keys set, and building a history object for each cost 0.1 ms
    a job."""
    state = inspect(job)
    values = state.dict
    if "version" not in values or values.get("id") is None:
        return None
    found: dict[str, Any] = {}
    for key, old in state.committed_state.items():
        new = values.get(key, NO_VALUE)
        if key in COLUMNS:
            if new is NO_VALUE or isinstance(new, ClauseElement) or key in ("id", "version"):
                return None  # a value removed, an SQL expression, the keys: the ORM's own UPDATE
            if old is NO_VALUE or not (new is old or new == old):
                found[key] = new
        elif key in MANY_TO_ONE and new is not old:
            return None
    return found


def _settle(job: Job, session: Session) -> None:
    """Mark ``job`` clean for the ORM's flush where nothing is left for it: every key still marked
    changed is a column (written, or set to what it was) or a test or queue set to what it was (a
    changed one made :func:`changes` give the job to the ORM)."""
    state: InstanceState[Any] = inspect(job)
    if all(key in COLUMNS or key in MANY_TO_ONE for key in state.committed_state):
        state._commit_all(state.dict, session.identity_map)


def write_rows(session: Session) -> None:
    """Insert the event and metric rows waiting in the session: one statement per kind."""
    pending = session.info.pop(PENDING_ROWS, None)
    if not pending:
        return
    groups: dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for model, values in pending:
        groups[(model, tuple(sorted(values)))].append(values)
    for (model, _keys), rows in groups.items():
        session.connection().execute(insert(model.__table__), rows)


def write_jobs(session: Session, jobs: Iterable[Job]) -> None:
    """The compare-and-set UPDATEs of ``jobs``, one ``executemany`` per set of changed columns."""
    groups: dict[tuple[str, ...], list[tuple[Job, dict[str, Any]]]] = defaultdict(list)
    now = utcnow()
    for job in jobs:
        found = changes(job)
        if found:
            found.setdefault("updated_at", now)  # the column's onupdate, which a Core UPDATE does not apply
            groups[tuple(sorted(found))].append((job, found))
        elif found is not None:  # set to what it was: nothing to write
            _settle(job, session)
    for keys, members in groups.items():
        statement = update(TABLE).where(TABLE.c.id == bindparam("w_id"), TABLE.c.version == bindparam("w_seen")) \
            .values({**{k: bindparam(f"w_{k}") for k in keys}, "version": TABLE.c.version + 1})
        params = [{"w_id": job.id, "w_seen": job.version, **{f"w_{k}": v for k, v in found.items()}}
                  for job, found in members]
        result = session.connection().execute(statement, params)
        if result.rowcount != len(params):
            raise StaleDataError(f"UPDATE statement on table 'job' expected to update {len(params)} row(s); "
                                 f"{result.rowcount} were matched (a job changed under this flush)")
        for job, found in members:
            for key, value in found.items():
                attributes.set_committed_value(job, key, value)
            attributes.set_committed_value(job, "version", job.version + 1)
            _settle(job, session)


@event.listens_for(Session, "before_flush")
def _batch(session: Session, _context: Any, _instances: Any) -> None:
    write_rows(session)
    jobs = [o for o in session.dirty if isinstance(o, Job) and o not in session.deleted]
    if len(jobs) > 1:
        write_jobs(session, jobs)


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, _previous: Any) -> None:
    """Rows of a transaction that was rolled back are never written."""
    session.info.pop(PENDING_ROWS, None)

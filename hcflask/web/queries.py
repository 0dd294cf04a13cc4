"""Read-side queries shared by the pages and the API (counts, filters, pages)."""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from hcflask.engine.data.rollups import OUTCOMES, job_rows
from hcflask.extensions import db
from hcflask.models import Job, Queue, RollupTest, Template, Test, ValidationError
from hcflask.states import IN_FLIGHT, JobState, QueueStatus, TestState

#: the HammerCloud columns: submitted (incl. pending and queued), running, completed, failed
COLUMNS = {
    JobState.PENDING.value: "submitted", JobState.SUBMITTED.value: "submitted",
    JobState.QUEUED.value: "submitted", JobState.RUNNING.value: "running",
    JobState.SUCCEEDED.value: "completed", JobState.FAILED.value: "failed",
    JobState.LOST.value: "failed", JobState.CANCELLED.value: "cancelled",
    JobState.NOT_APPLICABLE.value: "not_applicable",
}




@dataclasses.dataclass
class Counts:
    submitted: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    #: probes that did not apply (no GPU, no /cvmfs): shown apart, never in fail %
    not_applicable: int = 0

    @property
    def total(self) -> int:
        return self.submitted + self.running + self.completed + self.failed + self.cancelled + self.not_applicable

    @property
    def fail_percent(self) -> float | None:
        judged = self.completed + self.failed
        return round(100.0 * self.failed / judged, 1) if judged else None

    def add(self, state: str, n: int) -> None:
        column = COLUMNS.get(state, "failed")
        setattr(self, column, getattr(self, column) + n)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total": self.total, "fail_percent": self.fail_percent}


def counts_by_test(test_ids: Iterable[int]) -> dict[int, Counts]:
    """Job counts per test: the finished ones from the per-test rollup, the ones in
    flight live (through the state index), so old tests of 10k jobs cost a few rows."""
    ids = list(test_ids)
    out: dict[int, Counts] = defaultdict(Counts)
    if not ids:
        return out
    finished = db.session.execute(select(RollupTest.test_id, *(func.sum(getattr(RollupTest, c)) for c in OUTCOMES))
                                  .where(RollupTest.test_id.in_(ids)).group_by(RollupTest.test_id))
    for test_id, *numbers in finished:
        for state, n in zip(OUTCOMES, numbers, strict=True):
            out[test_id].add(state, int(n or 0))
    for test_id, state, n in db.session.execute(
            select(Job.test_id, Job.state, func.count()).where(Job.state.in_(IN_FLIGHT), Job.test_id.in_(ids))
            .group_by(Job.test_id, Job.state)):
        out[test_id].add(state, n)
    return out


def counts_by_queue(test_id: int) -> dict[int, Counts]:
    """One test's job counts per queue id (finished from the rollup, in flight live): by id, so a
    queue's history stays its own when it is renamed, or deleted and its name taken again."""
    out: dict[int, Counts] = defaultdict(Counts)
    finished = db.session.execute(select(RollupTest.queue_id, *(getattr(RollupTest, c) for c in OUTCOMES))
                                  .where(RollupTest.test_id == test_id))
    for queue_id, *numbers in finished:
        for state, n in zip(OUTCOMES, numbers, strict=True):
            out[queue_id].add(state, n)
    for queue_id, state, n in db.session.execute(
            select(Job.queue_id, Job.state, func.count())
            .where(Job.test_id == test_id, Job.state.in_(IN_FLIGHT)).group_by(Job.queue_id, Job.state)):
        out[queue_id].add(state, n)
    return out


@dataclasses.dataclass
class Page:
    items: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def paginate(query: Select[Any], page: int, per_page: int, total: int | None = None) -> Page:
    """One page of ``query`` (a SELECT of one model), and the total (counted, unless given).

    The page's ids are found first and its rows read by id: the ids alone come
    from an index, where whole rows made SQLite read and sort every row that
    matched (350 ms for the jobs of a template over a month, 6 ms this way).
    """
    if total is None:
        total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    model = query.column_descriptions[0]["entity"]
    ids = list(db.session.scalars(query.with_only_columns(model.id).limit(per_page).offset((page - 1) * per_page)))
    items = list(db.session.scalars(query.where(model.id.in_(ids)))) if ids else []
    return Page(items, total, page, per_page)


INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def as_id(text: str) -> int | None:
    """``text`` as a row id (ASCII digits within 64 bits), else None: ``'3³'`` and 10**30 are no ids."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= INT64_MAX else None


def int_arg(args: Mapping[str, str], name: str, default: int, low: int = 1, high: int = 10**9) -> int:
    """A whole-number query parameter (ASCII digits, optional minus) within [low, high], else a 400."""
    raw = args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,19}", raw):
        raise ValidationError(name, f"must be a whole number, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError(name, f"must be between {low} and {high}")
    return value


def _states(args: Mapping[str, str], words: Iterable[str]) -> list[str]:
    """``?state=a,b`` (each checked against ``words``); empty when absent."""
    states = [s.strip() for s in args.get("state", "").split(",") if s.strip()]
    allowed = [str(w) for w in words]
    for state in states:
        if state not in allowed:
            raise ValidationError("state", f"unknown state {state!r} (one of: {', '.join(allowed)})")
    return states


def _by_state(query: Select[Any], column: Any, args: Mapping[str, str], words: Iterable[str]) -> Select[Any]:
    """``query`` limited to ``?state=a,b`` (absent or empty: every state)."""
    states = _states(args, words)
    return query.where(column.in_(states)) if states else query


def jobs_total(args: Mapping[str, str]) -> int | None:
    """The job list's total from the rollups when at most ``state`` filters it (counting
    millions of rows would take longer than the page); None otherwise (count those)."""
    if any(args.get(name) for name in ("queue", "test", "template")):
        return None
    return job_rows(db.session(), _states(args, JobState) or None)


def jobs_query(args: Mapping[str, str]) -> Select[Any]:
    """Jobs filtered by ``state`` (comma list), ``queue`` (name), ``test``, ``template`` (name)."""
    query = _by_state(select(Job).order_by(Job.id.desc()), Job.state, args, JobState).options(
        selectinload(Job.queue), selectinload(Job.metrics))  # what to_dict and the tables show: no N+1
    if args.get("test"):
        test_id = int_arg(args, "test", 0, high=INT64_MAX)
        query = query.where(Job.test_id == test_id)
        if args.get("queue"):  # within a test, the queue by the name it had then (web/history.py)
            query = query.where(Job.queue_id == _queue_of_test(test_id, args["queue"]))
    elif args.get("queue"):
        query = query.where(Job.queue_id == _live_queue_id(args["queue"]))
    if args.get("template"):
        query = query.where(Job.template_id == select(Template.id).where(Template.name == args["template"])
                            .scalar_subquery())
    return query


def _live_queue_id(name: str) -> int:
    """The id of the queue called ``name`` now (0, matching nothing, if none): a deleted queue's
    history does not pass to a new queue that took its name."""
    return db.session.scalar(select(Queue.id).where(Queue.name == name, Queue.deleted_at.is_(None))) or 0


def _queue_of_test(test_id: int, name: str) -> int:
    """The id of the queue that test ``test_id`` knew as ``name`` (0 if none)."""
    test = db.session.get(Test, test_id)
    ids = dict(zip(test.queue_names or [], test.queue_ids or [], strict=False)) if test else {}
    return int(ids.get(name, 0))


def tests_query(args: Mapping[str, str]) -> Select[Any]:
    query = _by_state(select(Test).order_by(Test.id.desc()), Test.state, args, TestState)
    if args.get("template"):
        query = query.join(Test.template).where(Template.name == args["template"])
    if args.get("queue"):
        query = query.where(Test.id.in_(select(Job.test_id).where(Job.queue_id == _live_queue_id(args["queue"]))))
    return query


def queues_query(args: Mapping[str, str]) -> Select[Any]:
    query = _by_state(Queue.live().order_by(Queue.name), Queue.status, args, QueueStatus)
    if args.get("backend"):
        query = query.where(Queue.backend == args["backend"])
    return query


def templates_query(args: Mapping[str, str]) -> Select[Any]:
    query = select(Template).order_by(Template.name)
    if args.get("active") not in (None, "", "true", "false"):
        raise ValidationError("active", "must be true or false")
    if args.get("active"):
        query = query.where(Template.active.is_(args["active"] == "true"))
    return query

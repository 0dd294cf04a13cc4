"""Writing the rollups (see :mod:`hcflask.models.rollup`).

One writer, :func:`record`, takes the outcomes of jobs that reached a final
state and adds them to the day, reason and all-time rows with upserts
(``INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n``), so two
writers never lose each other's counts.  A ``before_flush`` hook calls it
for every job whose state becomes final, whatever code path moved it
(judging, cancelling, reconcile's lost jobs): the rollup rows are written
in the same transaction as the job.  Bulk loaders (the benchmark,
``hc db rollup --rebuild``) call :func:`record` directly.

Availability intervals are added when the *next* finished job of the same
queue × template arrives (the previous outcome holds until then, or for the
robot window).  A job judged out of order (it ended before the last one
recorded) adds its counts but no interval; a rebuild makes those exact.

Every app imports this module for its hook, so the rollup models are imported by the functions
that write them: an ``hc`` command that writes no final job never declares them
(:mod:`hcflask.models`).
"""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import case, delete, event, func, insert, literal, or_, select, text
from sqlalchemy.orm import Session, attributes

from hcflask.models import Job, Queue, QueueEvent, Test
from hcflask.signatures import signature
from hcflask.states import IN_FLIGHT, JobState, QueueStatus

FINAL = {s.value for s in JobState if s.final}
FINISHED = {JobState.SUCCEEDED.value, JobState.FAILED.value}
OUTCOME_COLUMN = {JobState.SUCCEEDED.value: "succeeded", JobState.FAILED.value: "failed",
                  JobState.CANCELLED.value: "cancelled", JobState.LOST.value: "lost",
                  JobState.NOT_APPLICABLE.value: "not_applicable"}
#: a not-applicable job says nothing about the queue: the per-test rollup counts it, the day and
#: all-time rollups only add its seconds (their columns are the four outcomes of :data:`COUNTS`)
NOT_APPLICABLE = JobState.NOT_APPLICABLE.value
OUTCOMES = tuple(OUTCOME_COLUMN.values())
#: the :class:`Tally` names of finished jobs whose rows retention deleted, one per final state
PURGED = {state: f"job_rows_purged:{state}" for state in OUTCOME_COLUMN}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a rollup needs of one job that reached a final state."""

    queue_id: int
    template: str
    state: str
    #: the failure signature (:mod:`hcflask.signatures`), '' for a success
    reason: str
    started_at: datetime | None
    ended_at: datetime
    cores: int = 1
    #: counted per test too (:class:`~hcflask.models.rollup.RollupTest`) when given
    test_id: int | None = None

    @property
    def wall_seconds(self) -> float:
        if self.started_at is None or self.ended_at < self.started_at:
            return 0.0
        return (self.ended_at - self.started_at).total_seconds()


def reason_key(signature: str) -> str:
    """The key of a failed or lost job in :class:`RollupReason`: its failure signature."""
    return signature or "(no reason)"


def cores_of(snapshot: dict[str, Any]) -> int:
    return int(((snapshot.get("workload") or {}).get("resources") or {}).get("cores", 1) or 1)


def outcome_of(job: Job, test: Test) -> Outcome:
    return Outcome(job.queue_id, test.template_name, job.state, job.failure_signature or "", job.started_at,
                   job.ended_at or job.updated_at or datetime.now(), cores_of(test.snapshot), test.id)


def window() -> timedelta:
    hours = current_app.config["ROBOT"].get("window_hours", 4) if has_app_context() else 4
    return timedelta(hours=float(hours))


def split_days(start: datetime, end: datetime) -> Iterator[tuple[date, datetime, datetime]]:
    """[start, end) cut at UTC midnights: (day, piece start, piece end)."""
    while start < end:
        midnight = datetime.combine(start.date() + timedelta(days=1), time.min)
        yield start.date(), start, min(end, midnight)
        start = midnight


def offline_spans(session: Session, ranges: Mapping[int, tuple[datetime, datetime]],
                  ) -> dict[int, list[tuple[datetime, datetime]]]:
    """Per queue id, the intervals within its [lo, hi) the queue spent ``offline`` (an admin's
    downtime); two statements for all the queues (a monitor tick judges jobs of many)."""
    offline = QueueStatus.OFFLINE.value
    events: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(select(
            QueueEvent.queue_id, QueueEvent.time, QueueEvent.old_status, QueueEvent.new_status).where(
            QueueEvent.queue_id.in_(ranges), QueueEvent.time < max(hi for _, hi in ranges.values())).order_by(
            QueueEvent.queue_id, QueueEvent.time, QueueEvent.id)):
        if row.time < ranges[row.queue_id][1]:
            events[row.queue_id].append(row)
    quiet = set(ranges) - set(events)
    now = dict(session.execute(select(Queue.id, Queue.status).where(Queue.id.in_(quiet))).all()) if quiet else {}
    found = {}
    for queue_id, (lo, hi) in ranges.items():
        mine = events.get(queue_id, [])
        status = mine[0].old_status if mine else now.get(queue_id)
        since, spans = datetime.min, []
        for row in mine:
            if status == offline and row.time > lo:
                spans.append((max(since, lo), row.time))
            status, since = row.new_status, row.time
        if status == offline:
            spans.append((max(since, lo), hi))
        found[queue_id] = spans
    return found


def overlap(spans: Iterable[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    return sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in spans)


class _Batch:
    """The increments of one :func:`record` call, keyed like the rows they go to."""

    def __init__(self) -> None:
        self.days: dict[tuple[int, str, date], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.reasons: dict[tuple[int, str, date, str], int] = defaultdict(int)
        self.totals: dict[tuple[int, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.tests: dict[tuple[int, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def count(self, o: Outcome) -> None:
        column = OUTCOME_COLUMN[o.state]
        if o.test_id is not None:
            self.tests[(o.test_id, o.queue_id)][column] += 1
        wall = o.wall_seconds
        for row in (self.days[(o.queue_id, o.template, o.ended_at.date())], self.totals[(o.queue_id, o.template)]):
            row[column] += 1  # not_applicable: no such column here, _full leaves it out
            row["wall_seconds"] += wall
            row["core_seconds"] += wall * o.cores
        if o.state in (JobState.FAILED.value, JobState.LOST.value):
            self.reasons[(o.queue_id, o.template, o.ended_at.date(), reason_key(o.reason))] += 1

    def interval(self, key: tuple[int, str], lo: datetime, hi: datetime, ok: bool,
                 offline: list[tuple[datetime, datetime]]) -> None:
        for day, a, b in split_days(lo, hi):
            row = self.days[(key[0], key[1], day)]
            seconds, down = (b - a).total_seconds(), overlap(offline, a, b)
            row["known_seconds"] += seconds
            row["known_offline_seconds"] += down
            if ok:
                row["up_seconds"] += seconds
                row["up_offline_seconds"] += down


def record(session: Session, outcomes: Iterable[Outcome], valid: timedelta | None = None) -> None:
    """Add ``outcomes`` (jobs that reached a final state) to the rollups, in ``session``'s transaction."""
    valid = window() if valid is None else valid
    batch = _Batch()
    series: dict[tuple[int, str], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        batch.count(outcome)
        if outcome.state in FINISHED:
            series[(outcome.queue_id, outcome.template)].append(outcome)
    if series:
        _intervals(session, batch, series, valid)
    _flush(session, batch)


def _intervals(session: Session, batch: _Batch, series: dict[tuple[int, str], list[Outcome]],
               valid: timedelta) -> None:
    from hcflask.models.rollup import RollupTail

    tails = {(t.queue_id, t.template): (t.ended_at, t.ok) for t in session.execute(
        select(RollupTail.queue_id, RollupTail.template, RollupTail.ended_at, RollupTail.ok).where(
            RollupTail.queue_id.in_({k[0] for k in series})))}
    ranges: dict[int, tuple[datetime, datetime]] = {}
    for key, items in series.items():
        items.sort(key=lambda o: o.ended_at)
        first = tails[key][0] if key in tails else items[0].ended_at
        lo, hi = ranges.get(key[0], (first, items[-1].ended_at))
        ranges[key[0]] = (min(lo, first), max(hi, items[-1].ended_at))
    spans = offline_spans(session, ranges)
    updates = []
    for key, items in series.items():
        tail = tails.get(key)
        offline = spans[key[0]]
        for item in items:
            if tail is not None and item.ended_at < tail[0]:
                continue  # judged out of order: counted, no interval (a rebuild places it)
            if tail is not None:
                batch.interval(key, tail[0], min(tail[0] + valid, item.ended_at), tail[1], offline)
            tail = (item.ended_at, item.state == JobState.SUCCEEDED.value)
        if tail is not None:
            updates.append({"queue_id": key[0], "template": key[1], "ended_at": tail[0], "ok": tail[1]})
    _upsert(session, RollupTail, updates, ("queue_id", "template"), ("ended_at", "ok"), add=False)


def _flush(session: Session, batch: _Batch) -> None:
    from hcflask.models.rollup import COUNTS, TIMES, Rollup, RollupReason, RollupTest, RollupTotal

    _upsert(session, Rollup, [{"queue_id": q, "template": t, "day": d, **_full(v, COUNTS + TIMES)}
                              for (q, t, d), v in batch.days.items()], ("queue_id", "template", "day"),
            COUNTS + TIMES)
    _upsert(session, RollupReason, [{"queue_id": q, "template": t, "day": d, "reason": r, "n": n}
                                    for (q, t, d, r), n in batch.reasons.items()],
            ("queue_id", "template", "day", "reason"), ("n",))
    _upsert(session, RollupTotal, [{"queue_id": q, "template": t, **_full(v, COUNTS)}
                                   for (q, t), v in batch.totals.items()], ("queue_id", "template"), COUNTS)
    _upsert(session, RollupTest, [{"test_id": t, "queue_id": q, **_full(v, OUTCOMES)}
                                  for (t, q), v in batch.tests.items()], ("test_id", "queue_id"), OUTCOMES)


def add_tally(session: Session, name: str, n: int) -> None:
    """Add ``n`` to the tally ``name``, in ``session``'s transaction (safe against a concurrent writer)."""
    from hcflask.models.rollup import Tally

    _upsert(session, Tally, [{"name": name, "n": n}], ("name",), ("n",))


def job_rows(session: Session, states: Iterable[str] | None = None) -> int:
    """How many job rows there are (in ``states``, default all), without counting them:
    the finished jobs the all-time rollups hold, less those retention deleted, plus the
    jobs in flight (through the state index).  One statement, so one snapshot on PostgreSQL."""
    from hcflask.models.rollup import RollupTest, RollupTotal, Tally

    wanted = set(states) if states is not None else FINAL | set(IN_FLIGHT)
    finals, live = [s for s in OUTCOME_COLUMN if s in wanted], [s for s in IN_FLIGHT if s in wanted]
    parts: list[Any] = []
    if finals:
        done = sum((getattr(RollupTotal, OUTCOME_COLUMN[s]) for s in finals if s != NOT_APPLICABLE),
                   start=literal(0))
        parts.append(select(func.coalesce(func.sum(done), 0)).scalar_subquery())
        if NOT_APPLICABLE in finals:  # kept in the per-test rollup only (see OUTCOME_COLUMN)
            parts.append(select(func.coalesce(func.sum(RollupTest.not_applicable), 0)).scalar_subquery())
        parts.append(-select(func.coalesce(func.sum(Tally.n), 0))
                     .where(Tally.name.in_([PURGED[s] for s in finals])).scalar_subquery())
    if live:
        parts.append(select(func.count()).select_from(Job).where(Job.state.in_(live)).scalar_subquery())
    return int(session.scalar(select(sum(parts, start=literal(0)))) or 0) if parts else 0


def add_purged(session: Session, states: Iterable[str],
               tests: Iterable[tuple[int, int]] | None = None) -> None:
    """Retention deleted the rows of finished jobs in ``states`` (one entry per row); with
    ``tests`` (their (test id, queue id), in the same order) per test too, so a rebuild of a
    test's counts (:func:`rebuild_tests`) adds back what retention took."""
    states = list(states)
    for state, n in Counter(states).items():
        add_tally(session, PURGED[state], n)
    if tests is not None:
        for (test_id, queue_id, state), n in Counter(
                (t, q, s) for (t, q), s in zip(tests, states, strict=True)).items():
            add_tally(session, purged_test(test_id, queue_id, state), n)


def purged_test(test_id: int, queue_id: int, state: str) -> str:
    """The :class:`Tally` of one test × queue's finished jobs in ``state`` retention deleted."""
    return f"{PURGED[state]}:test:{test_id}:{queue_id}"


def _full(values: dict[str, float], columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: (int(values.get(c, 0)) if c in OUTCOME_COLUMN.values() else float(values.get(c, 0.0)))
            for c in columns}


def _upsert(session: Session, model: Any, rows: list[dict[str, Any]], keys: tuple[str, ...],
            columns: tuple[str, ...], add: bool = True) -> None:
    """Insert ``rows``; where the key exists, add to (or, ``add`` False, replace) ``columns``.

    The dialect's ``insert`` is imported here, for the database in use: importing
    ``sqlalchemy.dialects.postgresql`` costs every ``hc`` command on SQLite 20 ms or more."""
    if not rows:
        return
    stmt: Any
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(model)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(model)
    table = model.__table__
    values = {c: (table.c[c] + stmt.excluded[c]) if add else stmt.excluded[c] for c in columns}
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=values), rows)


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Every job whose state becomes final in this flush goes into the rollups."""
    finals = []
    for job in list(session.new) + list(session.dirty):
        if not isinstance(job, Job) or job.state not in FINAL:
            continue
        history = attributes.get_history(job, "state")
        if history.added and not (history.deleted and history.deleted[0] in FINAL):
            finals.append(job)
    if finals:
        tests = {t.id: t for t in session.scalars(select(Test).where(Test.id.in_({j.test_id for j in finals})))}
        record(session, [outcome_of(j, tests[j.test_id]) for j in finals])


def rebuild(session: Session, since: date | None = None, chunk: int = 5000, later_tables: bool = True) -> int:
    """Recompute the rollups from the raw job rows; returns the number of jobs read.

    Days before ``since`` keep their rollups: retention may have deleted
    their job rows, and the plots must still show them.  The all-time
    totals are summed again from the day rows.  ``later_tables`` False leaves
    :class:`RollupTest` and :class:`Tally` alone (the migration that backfills
    the day rollups runs before those tables exist).

    On PostgreSQL the rollup tables are locked (EXCLUSIVE: readers go on,
    writers wait) for the rebuild's transaction.  A job being judged meanwhile
    writes its counts in the same transaction as its state, so it waits too:
    either it committed before the lock (the rebuild reads it final and counts
    it once) or it commits after the rebuild (and adds itself once).  Without
    the lock a job finalised between the DELETE and the SELECT counted twice.
    The tables are locked in the order :func:`record` writes them (tail first),
    so a writer and a rebuild never wait for each other in a circle.
    """
    from hcflask.models.rollup import COUNTS, Rollup, RollupReason, RollupTail, RollupTest, RollupTotal, Tally

    if session.get_bind().dialect.name == "postgresql":
        tables = [RollupTail, Rollup, RollupReason, RollupTotal] + ([RollupTest, Tally] if later_tables else [])
        session.execute(text(f"LOCK TABLE {', '.join(m.__tablename__ for m in tables)} IN EXCLUSIVE MODE"))
    for model in (Rollup, RollupReason):
        session.execute(delete(model).where(model.day >= since) if since else delete(model))
    if not since and later_tables:  # every rollup is recounted from the rows that are left
        session.execute(delete(Tally).where(or_(Tally.name.in_(list(PURGED.values())),
                                                Tally.name.like("job_rows_purged:%:test:%"))))
    session.execute(delete(RollupTail))
    templates = {i: (s.get("name", "?"), cores_of(s)) for i, s in session.execute(select(Test.id, Test.snapshot))}
    ended = func.coalesce(Job.ended_at, Job.updated_at)
    # the migration that backfills the day rollups runs before job.failure_signature exists
    stored = Job.failure_signature if later_tables else literal("")
    query = (select(Job.queue_id, Job.test_id, Job.state, stored, Job.failure_reason, Job.started_at, ended)
             .where(Job.state.in_(FINAL)).order_by(ended, Job.id))
    if since:
        query = query.where(ended >= datetime.combine(since, time.min))
    seen, valid, outcomes = 0, window(), []
    rows = session.execute(query.execution_options(yield_per=chunk))
    for queue_id, test_id, state, sig, reason, started, end in rows:
        name, cores = templates[test_id]
        outcomes.append(Outcome(queue_id, name, state, sig or signature(reason or ""), started, end, cores))
        if len(outcomes) >= chunk:
            record(session, outcomes, valid)
            seen, outcomes = seen + len(outcomes), []
    record(session, outcomes, valid)
    if later_tables:
        rebuild_tests(session, since)
    session.execute(delete(RollupTotal))
    sums = [func.sum(getattr(Rollup, c)) for c in COUNTS]
    session.execute(insert(RollupTotal).from_select(
        ["queue_id", "template", *COUNTS],
        select(Rollup.queue_id, Rollup.template, *sums).group_by(Rollup.queue_id, Rollup.template)))
    return seen + len(outcomes)


def rebuild_tests(session: Session, since: date | None = None) -> None:
    """Recount :class:`RollupTest` from the job rows: every test, or (``since``) the tests
    with a job that ended since then, plus the jobs of theirs retention deleted (their
    per-test tallies); older tests keep their counts."""
    from hcflask.models.rollup import RollupTest, Tally

    ended = func.coalesce(Job.ended_at, Job.updated_at)
    tests = select(Job.test_id).distinct()
    if since:
        tests = tests.where(ended >= datetime.combine(since, time.min))
    session.execute(delete(RollupTest).where(RollupTest.test_id.in_(tests)) if since else delete(RollupTest))
    session.execute(insert(RollupTest).from_select(["test_id", "queue_id", *OUTCOMES], test_counts(tests)))
    if since:
        recounted = set(session.scalars(tests))
        purged = []
        for name, n in session.execute(select(Tally.name, Tally.n).where(Tally.name.like("job_rows_purged:%:test:%"))):
            state, test_id, queue_id = name.split(":")[1], *map(int, name.split(":")[3:5])
            if test_id in recounted and n:
                purged.append({"test_id": test_id, "queue_id": queue_id,
                               **{c: n * (c == OUTCOME_COLUMN[state]) for c in OUTCOMES}})
        _upsert(session, RollupTest, purged, ("test_id", "queue_id"), OUTCOMES)


def test_counts(tests: Any) -> Any:
    """SELECT test_id, queue_id and the final outcome counts of the jobs of ``tests`` (a subquery of ids)."""
    return (select(Job.test_id, Job.queue_id,
                   *(func.sum(case((Job.state == state, 1), else_=0)) for state in OUTCOME_COLUMN))
            .where(Job.state.in_(FINAL), Job.test_id.in_(tests)).group_by(Job.test_id, Job.queue_id))


def kept_since(now: datetime, jobs_days: float, failed_days: float) -> date:
    """The first day whose job rows retention has not touched: rebuild from there."""
    return (now - timedelta(days=min(jobs_days, failed_days))).date() + timedelta(days=1)

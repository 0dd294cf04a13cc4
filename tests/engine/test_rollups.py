"""Rollups are written with every job that reaches a final state, and agree
with a direct count over the raw rows, also after retention has run."""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.engine.data.retention import purge
from hcflask.engine.data.rollups import OUTCOMES, job_rows, rebuild
from hcflask.extensions import db
from hcflask.models import Job, Queue, QueueEvent, Rollup, RollupTest, RollupTotal, utcnow
from hcflask.models.rollup import COUNTS, TIMES
from hcflask.web import queries
from hcflask.web.robot import stats
from tests.conftest import make_app
from tests.scale_history import close, direct_counts, finish, new_job, rollup_counts, setup


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomised_history_rollups_equal_direct_count(app: Flask, seed: int) -> None:
    """Judged, cancelled and lost jobs over 250 days, flushed in random batches, with
    retention passes in between: each (queue, template, day) equals the raw count
    (for purged days, the count the raw rows gave before the purge)."""
    randomised_history(app, seed)


@pytest.mark.slow
def test_randomised_history_on_postgres(postgres: Any, tmp_path: Path) -> None:
    """The same on PostgreSQL (its own upsert dialect)."""
    app = make_app(tmp_path / "instance", DATABASE_URL=postgres.create_database())
    try:
        randomised_history(app, 4)
    finally:
        with app.app_context():
            db.engine.dispose()


def randomised_history(app: Flask, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible data
    with app.app_context():
        tests = setup(app)
        queue_ids = list(db.session.scalars(select(Queue.id)))
        start = datetime.combine(utcnow().date() - timedelta(days=250), time.min)
        expected: dict = {}
        purged: dict = {}
        pending: list[Job] = []
        for n in range(1500):
            now = start + timedelta(hours=4 * n, minutes=rng.randint(0, 200))
            pending.append(new_job(rng.choice(tests), rng.choice(queue_ids), now, n))
            if rng.random() < 0.8 and pending:
                finish(pending.pop(rng.randrange(len(pending))), rng, now + timedelta(minutes=1))
            if rng.random() < 0.1:
                db.session.commit()
            if rng.random() < 0.01:
                db.session.commit()
                before = direct_counts()
                expected = merge(expected, before)
                purge(budget_seconds=None, now=now)
                after = direct_counts()
                for key in per_test(before):
                    purged[key] = purged.get(key, 0.0) + before[key] - after.get(key, 0.0)
        db.session.commit()
        now_counted = direct_counts()
        expected = merge(expected, now_counted)
        jobs = list(db.session.scalars(select(Job)))
        assert len(jobs) < 1500, "retention deleted nothing"
        assert sorted(j.id for j in jobs if j.in_flight) == sorted(j.id for j in pending)
        # a test's counts keep its purged jobs: what is left plus what retention took
        for key in per_test(now_counted) | per_test(purged):
            expected[key] = now_counted.get(key, 0.0) + purged.get(key, 0.0)
        assert any(purged.values()), "retention purged no job of a test"
        assert close(expected, rollup_counts()) == []
        # the job list's totals, from the rollups and the tallies of purged rows
        assert job_rows(db.session()) == len(jobs)
        by_state = Counter(j.state for j in jobs)
        for states in (["succeeded"], ["failed", "lost"], ["cancelled", "pending"], list(by_state)):
            assert job_rows(db.session(), states) == sum(by_state[s] for s in states), states
    client = app.test_client()
    assert client.get("/api/v1/jobs").get_json()["total"] == len(jobs)
    assert client.get("/api/v1/jobs?state=failed,pending").get_json()["total"] == by_state["failed"] + by_state[
        "pending"]
    with app.app_context():
        totals = {(t.queue_id, t.template): t for t in db.session.scalars(select(RollupTotal))}
        for (queue_id, template), total in totals.items():
            for column in COUNTS:
                days = sum(getattr(r, column) for r in db.session.scalars(select(Rollup).where(
                    Rollup.queue_id == queue_id, Rollup.template == template)))
                assert getattr(total, column) == pytest.approx(days)


def merge(old: dict, new: dict) -> dict:
    """Day counts only grow until retention deletes them: the larger one is the true one."""
    return {k: max(old.get(k, 0.0), new.get(k, 0.0)) for k in set(old) | set(new)}


def per_test(counts: dict) -> set:
    """The per-test keys of :func:`direct_counts` (a test spans days: max() does not merge them)."""
    return {k for k in counts if k[0] == "test"}


def test_rebuild_gives_the_rollups_the_writer_gave(app: Flask, runner) -> None:  # noqa: ANN001
    rng = random.Random(7)  # noqa: S311 - reproducible data
    with app.app_context():
        tests = setup(app)
        queue_ids = list(db.session.scalars(select(Queue.id)))
        start = datetime.combine(utcnow().date() - timedelta(days=20), time.min)
        for n in range(400):
            now = start + timedelta(minutes=60 * n + rng.randint(0, 30))
            finish(new_job(rng.choice(tests), rng.choice(queue_ids), now, n), rng, now + timedelta(minutes=5))
            if rng.random() < 0.2:
                db.session.commit()
        db.session.commit()
        written = snapshot()
        assert written and close(direct_counts(), rollup_counts()) == []
        db.session.execute(Rollup.__table__.delete())
        db.session.execute(RollupTest.__table__.delete())
        db.session.commit()
    result = runner.invoke(args=["db", "rollup", "--rebuild"])
    assert result.exit_code == 0 and "rollups rebuilt from 400 finished jobs" in result.output, result.output
    with app.app_context():
        assert close(written, snapshot()) == []
        rebuild(db.session)
        assert close(written, snapshot()) == []
        assert job_rows(db.session()) == db.session.scalar(select(func.count()).select_from(Job)) == 400


def snapshot() -> dict:
    return {**{(r.queue_id, r.template, r.day, c): float(getattr(r, c))
               for r in db.session.scalars(select(Rollup)) for c in COUNTS + TIMES},
            **{("test", r.test_id, r.queue_id, c): float(getattr(r, c))
               for r in db.session.scalars(select(RollupTest)) for c in OUTCOMES}}


def test_test_counts_are_the_rollup_plus_the_jobs_in_flight(app: Flask) -> None:
    """The test lists and pages read finished jobs from ``rollup_test`` and the ones in
    flight live: together they equal a count over every job row, per test and per queue."""
    rng = random.Random(5)  # noqa: S311 - reproducible data
    with app.app_context():
        tests = setup(app)
        queue_ids = list(db.session.scalars(select(Queue.id)))
        now = utcnow() - timedelta(hours=5)
        jobs = [new_job(rng.choice(tests), rng.choice(queue_ids), now, n) for n in range(300)]
        for job in jobs:
            roll = rng.random()
            if roll < 0.6:
                finish(job, rng, now + timedelta(minutes=rng.randint(1, 200)))
            elif roll < 0.8:
                job.state = rng.choice(["submitted", "queued", "running"])
            if rng.random() < 0.1:
                db.session.commit()
        db.session.commit()
        by_test: dict = defaultdict(queries.Counts)
        by_queue: dict = defaultdict(queries.Counts)
        for job in db.session.scalars(select(Job)):
            by_test[job.test_id].add(job.state, 1)
            if job.test_id == tests[0].id:
                by_queue[job.queue_id].add(job.state, 1)
        counted = queries.counts_by_test([t.id for t in tests])
        assert {k: v.to_dict() for k, v in counted.items()} == {k: v.to_dict() for k, v in by_test.items()}
        assert sum(c.total for c in counted.values()) == 300
        assert {k: v.to_dict() for k, v in queries.counts_by_queue(tests[0].id).items()} == {
            k: v.to_dict() for k, v in by_queue.items()}


def test_reliability_leaves_offline_time_out_and_never_exceeds_100(app: Flask) -> None:
    """Up 00-08 (offline 02-06), down 08-12 and after the last job: 50 % available,
    (8-4)/(16-4) = 33.3 % reliable.  The old figure counted the offline up-time in the
    numerator only, which is how it reached 100.8 %."""
    day = utcnow().date() - timedelta(days=3)
    at = lambda h: datetime.combine(day, time(h))  # noqa: E731
    with app.app_context():
        tests = setup(app, queues=1, templates=1)
        queue = db.session.scalar(select(Queue))
        for when, old, new in ((at(2), "online", "offline"), (at(6), "offline", "online")):
            db.session.add(QueueEvent(queue_id=queue.id, time=when, old_status=old, new_status=new, actor="admin:x"))
        db.session.commit()
        for n, (hour, state) in enumerate(((0, "succeeded"), (4, "succeeded"), (8, "failed"), (12, "failed"))):
            new_job(tests[0], queue.id, at(hour), n, state=state, started_at=at(hour), ended_at=at(hour))
            db.session.commit()
        row = stats.availability(day, day)[0]
        assert (row["availability"], row["reliability"]) == (50.0, 33.3)
        assert row["known_hours"] == 16.0 and row["offline_hours"] == 4.0
        assert stats.availability(day - timedelta(days=1), date.today())[0]["reliability"] <= 100.0


WRITER = """
import sys
from datetime import datetime
from pathlib import Path
from hcflask.engine.data.rollups import Outcome, record
from hcflask.extensions import db
from tests.conftest import make_app

app = make_app(Path(sys.argv[1]), DATABASE_URL=sys.argv[2])
with app.app_context():
    for n in range(int(sys.argv[3])):
        end = datetime(2026, 1, 1, 12, 0, n % 60)
        record(db.session, [Outcome(int(sys.argv[4]), "t0", "failed", "exit 1", end, end, 2)])
        db.session.commit()
"""


@pytest.mark.slow
def test_two_processes_writing_the_same_rollup_lose_no_count(postgres: Any, tmp_path: Path) -> None:
    """Two real processes add 150 failed jobs each to the same queue × template × day
    at once: the upserts leave 300, not one writer's count."""
    import subprocess
    import sys

    url = postgres.create_database()
    app = make_app(tmp_path / "main", DATABASE_URL=url)
    try:
        with app.app_context():
            setup(app, queues=1, templates=1)
            queue_id = db.session.scalar(select(Queue.id))
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / f"w{i}"), url, "150", str(queue_id)],
                                    cwd=Path(__file__).resolve().parents[2]) for i in range(2)]
        assert [w.wait(300) for w in writers] == [0, 0]
        with app.app_context():
            row = db.session.scalar(select(Rollup).where(Rollup.day == date(2026, 1, 1)))
            total = db.session.scalar(select(RollupTotal))
            assert (row.failed, total.failed, row.core_seconds) == (300, 300, 0.0)
    finally:
        with app.app_context():
            db.engine.dispose()

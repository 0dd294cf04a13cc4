"""The submission and monitor ticks cost the same number of SQL statements for 10 jobs
as for 100 (issue 21): no per-job query, commit or insert in a loop.

Real local jobs, real files, a real SQLite and a real PostgreSQL; the statements are
counted with SQLAlchemy's ``before_cursor_execute`` event (an ``executemany`` or one
batch of ``insertmanyvalues`` is one statement, as it is one round trip).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.backends import jobscript
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.submission import submission_tick
from hcflask.extensions import db
from hcflask.models import Job, JobMetric
from tests.conftest import kill_local_jobs, make_app, statements
from tests.factories import make_queue, make_template, make_test


def tick_statements(app: Flask, jobs: int, release: Path) -> dict[str, list[str]]:
    """The statements of: the submission tick that writes and submits ``jobs`` jobs, the monitor
    tick that sees them all running, and the monitor tick that judges them all.  The jobs start
    on their own (the local backend's slots) and wait for ``release`` to appear, so each tick
    sees all of them in one state."""
    script = f'while [ ! -e {release} ]; do sleep 0.05; done; echo "hc-ok value=42"'
    with app.app_context():
        make_queue("q1", slots=jobs)
        make_queue("q2", slots=jobs)
        make_test(make_template(queues=["q*"], jobs_in_flight=jobs // 2, max_jobs=jobs // 2, script=script), app)
    seen: dict[str, list[str]] = {}
    with statements(app) as seen["submission"]:
        submission_tick(app)
    with app.app_context():
        workdirs = [Path(w) for w in db.session.scalars(select(Job.workdir))]
        assert len(workdirs) == jobs
        _wait_for(workdirs, jobscript.STARTED)
        db.session.remove()
    with statements(app) as seen["start"]:
        monitor_tick(app)
    release.touch()
    _wait_for(workdirs, jobscript.RESULT)
    with statements(app) as seen["judge"]:
        monitor_tick(app)
    with app.app_context():
        states = dict(db.session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        assert states == {"succeeded": jobs}, states
        assert db.session.scalar(select(func.count()).select_from(JobMetric)) == jobs
    return seen


def _wait_for(workdirs: list[Path], name: str) -> None:
    deadline = time.monotonic() + 60
    while not all((w / name).exists() for w in workdirs):
        assert time.monotonic() < deadline, f"not every local job wrote {name} within 60 s"
        time.sleep(0.1)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_tick_statements_do_not_grow_with_the_jobs(database: str, tmp_path: Path, request: Any) -> None:
    counts = {}
    for jobs in (10, 100):
        url = request.getfixturevalue("postgres").create_database() if database == "postgres" else ""
        app = make_app(tmp_path / f"i{jobs}", DATABASE_URL=url)
        try:
            seen = tick_statements(app, jobs, tmp_path / f"release{jobs}")
            counts[jobs] = {kind: len(found) for kind, found in seen.items()}
        finally:
            kill_local_jobs(tmp_path / f"i{jobs}")
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    assert counts[10] == counts[100], counts
    # and few: a handful per tick, whatever the number of jobs
    assert all(n < 60 for n in counts[100].values()), counts


def test_a_monitor_tick_applies_at_most_jobs_per_tick_changes(tmp_path: Path) -> None:
    """12 jobs ended, 5 changes a tick: the oldest 5, then 5, then the last 2, and the tick says
    whether it left some (the scheduler then runs it again at once)."""
    app = make_app(tmp_path / "i", SCHEDULER_JOBS_PER_TICK=5)
    try:
        with app.app_context():
            make_queue("q1", slots=12)
            make_test(make_template(queues=["q1"], jobs_in_flight=12, max_jobs=12, script="echo hc-ok"), app)
        submission_tick(app)  # 5 jobs (its cap) ...
        submission_tick(app)
        submission_tick(app)  # ... 12 in all
        with app.app_context():
            workdirs = [Path(w) for w in db.session.scalars(select(Job.workdir))]
            assert len(workdirs) == 12
            db.session.remove()
        _wait_for(workdirs, jobscript.RESULT)
        passes = [monitor_tick(app)]
        with app.app_context():
            ids = db.session.scalars(select(Job.id).order_by(Job.id)).all()
            assert db.session.scalars(select(Job.id).where(Job.state == "succeeded").order_by(Job.id)).all() == ids[:5]
            db.session.remove()
        passes += [monitor_tick(app) for _ in range(3)]
        assert passes == [{"changed": 5, "more": 1}, {"changed": 5, "more": 1}, {"changed": 2, "more": 0},
                          {"changed": 0, "more": 0}]
        with app.app_context():
            assert db.session.scalar(select(func.count()).where(Job.state == "succeeded")) == 12
    finally:
        kill_local_jobs(tmp_path / "i")

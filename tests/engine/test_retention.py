"""Retention deletes exactly what is old, never a job in flight nor its
directory, and the overview still shows the purged days (from the rollups)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select

from hcflask.engine.data.retention import retention_tick
from hcflask.engine.data.rollups import FINAL
from hcflask.extensions import db
from hcflask.models import Job, JobEvent, JobMetric, Queue, RollupTest, utcnow
from tests.conftest import make_app
from tests.scale_history import new_job, setup

#: name → (state, days since it ended or None, kept row?, kept dir?)
CASES = {
    "ok_100": ("succeeded", 100, False, False),
    "cancelled_100": ("cancelled", 100, False, False),
    "failed_100": ("failed", 100, True, False),
    "failed_200": ("failed", 200, False, False),
    "lost_200": ("lost", 200, False, False),
    "ok_20": ("succeeded", 20, True, False),
    "ok_5": ("succeeded", 5, True, True),
    "running_old": ("running", 300, True, True),   # ended_at set while its result file is awaited
    "pending_old": ("pending", None, True, True),
}


def build(app: Flask) -> dict[str, int]:
    ids = {}
    with app.app_context():
        test = setup(app, queues=1, templates=1)[0]
        queue_id = db.session.scalar(select(Queue.id))
        now = utcnow()
        for n, (name, (state, age, _row, _dir)) in enumerate(CASES.items()):
            ended = now - timedelta(days=age, minutes=1) if age else None
            created = (ended or now - timedelta(days=400)) - timedelta(hours=1)
            job = new_job(test, queue_id, created, n, state=state, started_at=created, ended_at=ended)
            db.session.flush()
            workdir = Path(app.config["JOBS_ROOT"]) / str(test.id) / str(job.id)
            workdir.mkdir(parents=True)
            (workdir / "stdout").write_text(name)
            job.workdir = str(workdir)
            job.events.append(JobEvent(old_state="pending", new_state=state))
            db.session.commit()
            ids[name] = job.id
    return ids


def test_retention_deletes_exactly_what_is_old(tmp_path: Path) -> None:
    app = make_app(tmp_path / "instance", RETENTION_CHUNK=1)
    ids = build(app)
    runner: FlaskCliRunner = app.test_cli_runner()
    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert [line.split("  ")[0] for line in dry.output.splitlines()[1:]] == [
        "jobs (succeeded, cancelled)", "jobs (failed, lost)", "work dirs"], dry.output
    # the count, then "before 2026-12-03 08:25:02 UTC" (times as everywhere)
    assert [int(line.split()[-5]) for line in dry.output.splitlines()[1:]] == [2, 2, 6]
    assert all(line.endswith(" UTC") for line in dry.output.splitlines()[1:]), dry.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Job)) == len(CASES), "dry run deleted"
        client: FlaskClient = app.test_client()
        day = (utcnow() - timedelta(days=100, minutes=1)).date().isoformat()
        before = client.get(f"/api/v1/overview/jobs?from={day}&to={day}").get_json()["data"]
        retention_tick(app)
        kept = {j.id: j for j in db.session.scalars(select(Job))}
        for name, (_state, _age, row, keeps_dir) in CASES.items():
            assert (ids[name] in kept) is row, name
            workdir = Path(app.config["JOBS_ROOT"]) / "1" / str(ids[name])
            assert workdir.is_dir() is keeps_dir, name
            if row:
                assert (kept[ids[name]].workdir != "") is keeps_dir, name
        assert db.session.scalar(select(func.count()).select_from(JobEvent)) == 5
        assert db.session.scalar(select(func.count()).select_from(JobMetric)) == 0
        after = client.get(f"/api/v1/overview/jobs?from={day}&to={day}").get_json()["data"]
        assert after == before and after[0]["succeeded"] == 1 and after[0]["cancelled"] == 1
        assert after[0]["failed"] == 1
        heat = client.get(f"/api/v1/overview/heatmap?from={day}&to={day}").get_json()["data"]
        assert heat["rows"][0]["cells"][0]["finished"] == 2
        old = (utcnow() - timedelta(days=200, minutes=1)).date().isoformat()
        lost = client.get(f"/api/v1/overview/jobs?from={old}&to={old}").get_json()["data"]
        assert (lost[0]["lost"], lost[0]["failed"]) == (1, 1)
        db.session.remove()
        db.engine.dispose()


def test_rebuild_since_keeps_the_counts_of_a_long_test_retention_purged(tmp_path: Path) -> None:
    """One long test whose first days retention purged: ``hc db rollup --rebuild`` (from the
    first day retention left alone) recounts its recent jobs and keeps the purged ones."""
    app = make_app(tmp_path / "instance")
    build(app)
    with app.app_context():
        def counts() -> dict[tuple[int, int], tuple[int, ...]]:
            db.session.expire_all()
            return {(r.test_id, r.queue_id): (r.succeeded, r.failed, r.cancelled, r.lost)
                    for r in db.session.scalars(select(RollupTest))}

        before = counts()
        assert list(before.values()) == [(3, 2, 1, 1)]
        retention_tick(app)
        assert db.session.scalar(select(func.count()).select_from(Job).where(Job.state.in_(FINAL))) == 3
        rebuilt = app.test_cli_runner().invoke(args=["db", "rollup", "--rebuild"])
        assert rebuilt.exit_code == 0 and "days from" in rebuilt.output, rebuilt.output
        assert counts() == before
        db.session.remove()
        db.engine.dispose()

"""/healthz: per host and per tick, 503 with the reason when this host's
scheduler is missing or stale, 200 "degraded" while a backend is down."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import update

from hcflask.engine.common import record_health
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.service import corelease, hosts
from hcflask.engine.service.core import core_tick
from hcflask.engine.service.scheduler import actions_if_core
from hcflask.extensions import db
from hcflask.models import Host, TickRun, utcnow
from tests.conftest import make_app


def _beat(app: Flask) -> None:
    """What the scheduler does: renew the lease (as the core) and run each tick once."""
    with app.app_context():
        hosts.claim(core=True)
        role = corelease.CoreRole()
        assert role.acquire()
    app.extensions["hc_core_role"] = role
    for tick in (core_tick, submission_tick, monitor_tick, actions_if_core):
        tick(app)


def test_no_scheduler_is_503_with_the_reason(client) -> None:  # noqa: ANN001
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["reasons"] == ["no scheduler has run on host testhost"]


def test_fresh_ticks_are_ok_and_stale_ones_503(app: Flask, client) -> None:  # noqa: ANN001
    _beat(app)
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok", body
    assert set(body["ticks"]) >= {"core", "submission", "monitor", "actions"}
    assert body["hosts"]["testhost"]["live"] and body["core_host"] == "testhost"
    with app.app_context():
        db.session.execute(update(TickRun).where(TickRun.name == "monitor")
                           .values(finished_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert any(r.startswith("monitor tick on testhost last finished 36") for r in response.get_json()["reasons"])
    with app.app_context():
        db.session.execute(update(Host).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert "its lease ran out" in client.get("/healthz").get_json()["reasons"][0]


def test_backend_down_is_degraded_and_other_hosts_stay_apart(app: Flask, client, tmp_path: Path) -> None:  # noqa: ANN001
    _beat(app)
    other = make_app(tmp_path / "instance", HOST_NAME="elsewhere")  # same database, another host
    with other.app_context():
        record_health("slurm", "squeue: no answer within 30 s")
        db.session.commit()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and "slurm" not in body["backends"]
    assert body["backends_by_host"]["elsewhere"]["slurm"]["available"] is False
    with app.app_context():
        record_health("slurm", "squeue: no answer within 30 s")
        db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["reasons"] == ["backend slurm does not answer: squeue: no answer within 30 s"]


def test_a_failing_tick_shows_one_line_never_a_traceback(app: Flask, client) -> None:  # noqa: ANN001
    _beat(app)
    with app.app_context():
        db.drop_all()  # every tick now fails on the missing tables
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["reasons"][0].startswith("cannot read the database: ")
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_tick_slower_than_twice_its_interval_is_degraded(app: Flask, client) -> None:  # noqa: ANN001
    """The engine is behind (issue 21): its last submission run took 3 intervals, so runs were skipped."""
    _beat(app)
    with app.app_context():
        row = db.session.get(TickRun, ("testhost", "submission"))
        row.seconds = 3 * app.config["SCHEDULER_SUBMISSION_SECONDS"]
        db.session.commit()
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded", body
    assert any(r.startswith("submission tick took") and "the engine is behind" in r for r in body["reasons"])
    with app.app_context():
        db.session.get(TickRun, ("testhost", "submission")).seconds = 0.1
        db.session.commit()
    assert client.get("/healthz").get_json()["status"] == "ok"

"""The one owner of queue status: claims, priorities, compare-and-set.

The races are real: the admin's change is committed by another process
(``python -c`` creating its own app on the same database, SQLite or
PostgreSQL) between the robot's decision step and its writer.
"""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask.engine import actions, status
from hcflask.engine.robot.decide import decide
from hcflask.engine.robot.robot import load, robot_pass, write
from hcflask.engine.robot.rules import Settings
from hcflask.extensions import db
from hcflask.models import Queue, QueueClaim, QueueEvent, RobotEvent, RobotState, ValidationError
from tests.conftest import csrf_token, make_app
from tests.engine.history import base_time, jobs, start

OTHER_PROCESS = """
import sys
from hcflask import create_app
from hcflask.engine.actions import set_queue_status
from hcflask.extensions import db
from hcflask.models import Queue
url, name, status = sys.argv[1:4]
app = create_app({"INSTANCE_PATH": sys.argv[4], "DATABASE_URL": url, "SECRET_KEY": "other", "DEMO": False,
                  "HOST_NAME": "other", "SCHEDULER_ENABLED": False})
with app.app_context():
    queue = db.session.scalar(db.select(Queue).where(Queue.name == name))
    set_queue_status(queue, status, "admin:other (another process)", "site downtime")
"""


def other_process_sets(app: Flask, name: str, new: str, folder: Path) -> None:
    """Commit an admin's status from a separate process (its own connection)."""
    folder.mkdir(exist_ok=True)
    url = str(db.engine.url.render_as_string(hide_password=False))
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, url, name, new, str(folder)], check=True, timeout=60)


def queue(name: str) -> Queue:
    db.session.expire_all()
    return db.session.scalar(select(Queue).where(Queue.name == name))


def claims(name: str) -> list[tuple[str, str]]:
    return [(c.source, c.status) for c in status.read(queue(name).id).claims]


@pytest.fixture
def ctx(app: Flask):
    with app.app_context():
        yield app


def test_people_cannot_set_excluded(app: Flask, admin_client: FlaskClient, api_token: str) -> None:
    with app.app_context():
        actions.create_queue("q1", "local", {})
    result = app.test_cli_runner().invoke(args=["queue", "set-status", "q1", "excluded"])
    assert result.exit_code != 0 and "status" in result.output and "only the robot" in result.output
    response = admin_client.post("/api/v1/queues/q1/status", json={"status": "excluded"},
                                 headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "status"
    page = admin_client.post("/queues/q1/status", follow_redirects=True,
                             data={"csrf_token": csrf_token(admin_client, "/queues/q1"), "status": "excluded"})
    assert "status: only the robot and the performance bands set excluded" in page.get_data(as_text=True)
    with app.app_context():
        assert queue("q1").status == "online" and claims("q1") == []
    admin_client.post("/queues/q1/status", data={"csrf_token": csrf_token(admin_client, "/queues/q1"),
                                                 "status": "offline", "reason": "ticket 42"})
    page = admin_client.get("/queues/q1").get_data(as_text=True)
    table = page.split('id="claims"')[1].split("</table>")[0]
    assert "admin" in table and "offline" in table and "ticket 42" in table
    claim = admin_client.get("/api/v1/queues/q1").get_json()["claims"]
    assert [(c["source"], c["status"], c["reason"]) for c in claim] == [("admin", "offline", "ticket 42")]


def test_admin_claims_outrank_the_robot_and_online_releases_all(ctx: Flask) -> None:
    actions.create_queue("q1", "local", {})
    qid = queue("q1").id
    assert status.exclude(qid, "performance", "robot", "slow", "performance_band", [1]).done
    assert status.exclude(qid, "robot", "robot", "broken", "last_failed_in_one", [2, 3, 4]).done
    assert queue("q1").status == "excluded"
    status.admin_set(queue("q1"), "offline", "admin:x", "downtime")
    assert queue("q1").status == "offline"
    assert claims("q1") == [("performance", "excluded"), ("robot", "excluded"), ("admin", "offline")]
    refused = status.release(qid, "robot", "robot", "healthy", "recover")
    assert not refused.done and "an admin holds" in refused.why
    assert not status.exclude(qid, "robot", "robot", "again", "x", []).done
    status.admin_set(queue("q1"), "test", "admin:x")
    assert queue("q1").status == "test" and [s for s, _ in claims("q1")].count("admin") == 1
    status.admin_set(queue("q1"), "online", "admin:x", "all fixed")
    assert queue("q1").status == "online" and claims("q1") == []
    rules = set(db.session.scalars(select(QueueClaim.release_rule).where(QueueClaim.released_at.is_not(None))))
    assert rules == {"admin"}
    history = [(e.old_status, e.new_status) for e in db.session.scalars(select(QueueEvent).order_by(QueueEvent.id))]
    assert history == [("online", "excluded"), ("excluded", "offline"), ("offline", "test"), ("test", "online")]
    assert queue("q1").version == 5, "one version per write"
    with pytest.raises(ValidationError) as info:
        status.admin_set(queue("q1"), "gone", "admin:x")
    assert info.value.field == "status"


def test_a_write_on_a_stale_version_is_refused_and_replanned(ctx: Flask, tmp_path: Path) -> None:
    actions.create_queue("q1", "local", {})
    seen = status.read(queue("q1").id)
    db.session.commit()
    other_process_sets(ctx, "q1", "offline", tmp_path / "other")
    plan = status.Plan("robot", "broken", add=[{"source": "robot", "status": "excluded", "actor": "robot"}])
    assert status._write(seen, plan, base_time()) is None, "a stale version must not match"
    db.session.rollback()
    written = status.exclude(seen.queue_id, "robot", "robot", "broken", "x", [], expected=seen.version)
    assert not written.done and "an admin holds q1 (offline)" in written.why
    assert queue("q1").status == "offline" and claims("q1") == [("admin", "offline")]


def decided(app: Flask) -> tuple[Any, Any]:
    """The robot's read and decision steps, without its writer."""
    settings = Settings(app.config["ROBOT"])
    now = base_time() + timedelta(minutes=1)
    return decide(load(now, settings, RobotState.get()), settings), now


def race(app: Flask, folder: Path) -> None:
    test = start(app, ["bad1", "ok1", "ok2", "ok3"])
    t0 = base_time()
    jobs(test, ["ok1", "ok2", "ok3"], True, t0, count=2)
    jobs(test, ["bad1"], False, t0, count=3)
    decisions, now = decided(app)
    assert [m.queue.name for m in decisions.exclude] == ["bad1"]
    other_process_sets(app, "bad1", "offline", folder)
    write(decisions, now, time.monotonic())
    assert queue("bad1").status == "offline", "the robot overwrote an admin"
    assert "an admin holds bad1" in RobotState.get().last_summary["bad1"]["held"]
    assert db.session.scalar(select(RobotEvent).where(RobotEvent.kind == "exclude")) is None
    jobs(test, ["bad1"], True, now + timedelta(minutes=2), count=2)
    robot_pass(now=now + timedelta(minutes=3))
    assert queue("bad1").status == "offline", "the robot 'recovered' an admin's offline queue"
    assert claims("bad1") == [("admin", "offline")]


def test_admin_change_from_another_process_between_decision_and_write_wins(ctx: Flask, tmp_path: Path) -> None:
    race(ctx, tmp_path / "other")


def test_the_same_race_on_postgres(postgres: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path / "instance", DATABASE_URL=postgres.create_database())
    with app.app_context():
        race(app, tmp_path / "other")
        db.session.remove()
        db.engine.dispose()


def test_recovery_decided_before_an_admin_offline_is_not_written(ctx: Flask, tmp_path: Path) -> None:
    test = start(ctx, ["bad1"])
    t0 = base_time()
    jobs(test, ["bad1"], False, t0, count=3)
    robot_pass(now=t0)
    assert queue("bad1").status == "excluded"
    jobs(test, ["bad1"], True, t0 + timedelta(minutes=1), count=2)
    decisions, now = decided(ctx)
    assert [m.queue.name for m in decisions.recover] == ["bad1"]
    other_process_sets(ctx, "bad1", "offline", tmp_path / "other")
    write(decisions, now, time.monotonic())
    assert queue("bad1").status == "offline"
    assert claims("bad1") == [("robot", "excluded"), ("admin", "offline")]


def test_the_migration_turns_existing_statuses_into_claims(tmp_path: Path) -> None:
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    app = make_app(tmp_path / "instance")
    with app.app_context():
        folder = app.extensions["migrate"].directory
        downgrade(directory=folder, revision="5eee05e7f656")
        for i, old in enumerate(["online", "excluded", "offline", "test"]):
            db.session.execute(text("INSERT INTO queue (name, backend, status, autoexclusion, options, description, "
                                    "created_at) VALUES (:n, 'local', :s, 1, '{}', '', '2026-01-01')"),
                               {"n": f"q{i}", "s": old})
        db.session.commit()
        upgrade(directory=folder)
        rows = db.session.execute(text("SELECT q.name, c.source, c.status FROM queue_claim c JOIN queue q "
                                       "ON q.id = c.queue_id ORDER BY q.name")).all()
        assert [tuple(r) for r in rows] == [("q1", "robot", "excluded"), ("q2", "admin", "offline"),
                                            ("q3", "admin", "test")]
        assert status.admin_set(queue("q1"), "online", "admin:x").new == "online"
        db.session.remove()
        db.engine.dispose()

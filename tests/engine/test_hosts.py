"""Hosts in one process: two apps on one database stand for two services
(the real-process versions, with kill -9, are in tests/test_scaleout.py)."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from hcflask.engine import actions
from hcflask.engine.jobs.submission import cancel_leftover_jobs, submission_tick
from hcflask.engine.service import hosts
from hcflask.engine.service.core import core_tick
from hcflask.engine.service.lock import InstanceLock, LockUnsupported
from hcflask.extensions import db
from hcflask.models import Alert, Host, Job, Queue, Test, ValidationError, utcnow
from tests.conftest import make_app
from tests.factories import make_queue, make_template


@pytest.fixture
def other(app: Flask) -> Flask:
    """A second service, node-b, on the same database."""
    node_b = make_app(Path(app.instance_path), HOST_NAME="node-b")
    with node_b.app_context():
        hosts.claim()
    return node_b


def test_a_renewal_keeps_its_host(app: Flask, other: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        first = actions.start_test(make_template(renew=True), actor="tests", host="node-b").id
        core_tick(app)
        db.session.execute(update(Test).values(end_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        core_tick(app)  # ends the test, renews the template, starts the renewal
        renewal = db.session.scalars(select(Test).where(Test.id != first)).one()
        assert (renewal.state, renewal.host, renewal.created_by) == ("running", "node-b", "renew")


def test_unknown_host_is_an_error_naming_the_field(app: Flask, other: Flask, api_token: str) -> None:
    with app.app_context():
        make_queue("q1")
        template = make_template()
        with pytest.raises(ValidationError, match="^host: unknown host 'nowhere' \\(known: node-b\\)"):
            actions.start_test(template, actor="tests", host="nowhere")
        test = actions.start_test(template, actor="tests")
        assert actions.move_test(test, "node-b", "tests").host == "node-b"
    response = app.test_client().post("/api/v1/tests", json={"template": "t1", "host": "nowhere"},
                                      headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 409  # well formed, but no such host: a conflict with what exists
    error = response.get_json()["error"]
    assert error["field"] == "host" and error["reason"].startswith("unknown host 'nowhere'")
    moved = app.test_cli_runner().invoke(args=["test", "move", str(test.id), "--host", "nowhere"])
    assert moved.exit_code != 0 and "host: unknown host 'nowhere'" in moved.output


def test_one_live_lease_per_host_name(app: Flask) -> None:
    twin = make_app(Path(app.instance_path))  # same host_name, another service id
    with app.app_context():
        hosts.claim()
        hosts.claim()  # renewing our own lease is fine
    with twin.app_context(), pytest.raises(hosts.HostTaken, match="'testhost' is held by another hc serve"):
        hosts.claim()
    with app.app_context():  # a service of this machine whose master is gone is stale at once
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        db.session.execute(update(Host).values(service_id=f"{os.uname().nodename}:{dead}:x"))
        db.session.commit()
    with twin.app_context():
        assert hosts.claim().service_id == twin.config["SERVICE_ID"]


def test_a_dead_host_raises_an_alert_then_is_adopted_by_name(app: Flask, other: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        test_id = actions.start_test(make_template(), actor="tests", host="node-b").id
        core_tick(app)
        test = db.session.get_one(Test, test_id)
        queue = db.session.scalars(select(Queue)).one()
        doubt = Job(test=test, queue=queue, backend="local", name="hc-x-doubt", submit_attempts=1,
                    workdir=str(Path(app.instance_path, "jobs", "doubt")))
        db.session.add(doubt)
        db.session.execute(update(Host).where(Host.name == "node-b")
                           .values(lease_until=utcnow() - timedelta(seconds=5)))
        db.session.commit()
        app.config["HOSTS_ADOPT_AFTER"] = 0  # never
        assert core_tick(app)["dead_hosts"] == 1
        alert = db.session.scalars(select(Alert)).one()
        assert (alert.kind, alert.key, alert.is_open) == ("host", "host:node-b", True)
        assert "lease ran out" in alert.message and db.session.get_one(Test, test_id).host == "node-b"
        app.config["HOSTS_ADOPT_AFTER"] = 2
        assert core_tick(app)["adopted_tests"] == 1
        db.session.expire_all()
        adopted = db.session.get_one(Test, test_id)
        assert (adopted.host, adopted.epoch) == ("testhost", 2)  # a new epoch fences node-b's late writes
        # this host's submission tick looks the job up by name: the backend proves it never saw it
        summary = submission_tick(app)
        assert (summary["resubmitted"], summary["lost"]) == (1, 0)
        db.session.expire_all()
        assert db.session.get_one(Job, doubt.id).state == "submitted"
        assert "testhost adopted 1 tests" in alert.timeline[-1]["text"]
        core_tick(app)  # nothing left to drive on node-b: the alert closes
        db.session.expire_all()
        assert db.session.get_one(Alert, alert.id).closed_at is not None


def test_a_filesystem_without_locks_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake: no filesystem without flock can be mounted here, so flock itself fails as NFS without lockd does."""

    def no_locks(*_args: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("fcntl.flock", no_locks)
    with pytest.raises(LockUnsupported, match="does not support file locks .No locks available.; keep the instance"):
        InstanceLock(tmp_path / "scheduler.lock").acquire()


SLOW_SCANCEL = """#!/bin/bash
touch "$FAKE_DIR/scancel.started"
for i in $(seq 200); do [ -e "$FAKE_DIR/release" ] && exit 0; sleep 0.1; done
"""
WRITER = """import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0.5)
db.execute("UPDATE queue SET description = 'written while scancel ran'")
db.commit()
"""


def test_no_write_lock_is_held_while_scancel_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, body in {"scancel": SLOW_SCANCEL, "sbatch": "#!/bin/bash\nexit 0\n"}.items():
        (fake / name).write_text(body)
        (fake / name).chmod(0o755)
    monkeypatch.setenv("FAKE_DIR", str(fake))
    app = make_app(tmp_path / "instance", BACKENDS={"local": {}, "slurm": {"bin_dir": str(fake)}, "panda": {}})
    with app.app_context():
        make_queue("s1", "slurm", partition="debug")
        test = actions.start_test(make_template(queues=["s1"]), actor="tests", host="testhost")
        test.state = "cancelled"
        queue = db.session.scalars(select(Queue)).one()
        for name, backend_id, state in (("hc-x-0", "100", "queued"), ("hc-x-1", "101", "queued"),
                                        ("hc-x-unsent", None, "pending")):
            db.session.add(Job(test=test, queue=queue, backend="slurm", name=name, backend_id=backend_id,
                               state=state, workdir=str(tmp_path / name)))
        db.session.commit()

    def cancel() -> None:
        with app.app_context():
            cancel_leftover_jobs()

    worker = threading.Thread(target=cancel)
    worker.start()
    try:
        deadline = 200
        while not (fake / "scancel.started").exists() and deadline:
            deadline -= 1
            threading.Event().wait(0.1)
        writer = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "instance" / "hc.sqlite")],
                                capture_output=True, text=True)
    finally:
        (fake / "release").touch()
        worker.join(30)
    assert writer.returncode == 0, writer.stderr  # not "database is locked"
    with app.app_context():
        states = {j.name: (j.state, j.cancel_requested_at is not None) for j in db.session.scalars(select(Job))}
        assert states == {"hc-x-0": ("queued", True), "hc-x-1": ("queued", True), "hc-x-unsent": ("cancelled", False)}
        assert db.session.scalars(select(Queue.description)).one() == "written while scancel ran"


def test_hc_robot_run_refuses_while_a_core_runs(app: Flask, runner) -> None:  # noqa: ANN001
    held = InstanceLock(Path(app.instance_path) / "scheduler.lock")  # what the service's scheduler holds
    assert held.acquire()
    try:
        refused = runner.invoke(args=["robot", "run"])
        assert refused.exit_code != 0 and "the core runs in hc serve right now" in refused.output
    finally:
        held.release()
    assert runner.invoke(args=["robot", "run"]).exit_code == 0


def test_hc_init_no_demo_stays_without_demo(tmp_path: Path) -> None:
    env = {**os.environ, "HC_INSTANCE": str(tmp_path / "inst")}
    hc = [sys.executable, "-c", "from hcflask.cli import main; main()"]
    assert subprocess.run([*hc, "init", "--no-demo"], env=env, capture_output=True, check=True).returncode == 0
    listed = subprocess.run([*hc, "template", "list"], env=env, capture_output=True, text=True, check=True)
    assert "demo" not in listed.stdout, "a later command must not seed the demo into an existing database"

"""The core role as a lease: taken by compare-and-set when it runs out, every core
commit fenced by its epoch, a core alert by the host that takes over, and /healthz
503 while no live host holds it.  Two apps on one SQLite database are two hosts
(the real processes, PostgreSQL and Slurm are in tests/backends/test_slurm_core.py)."""
from __future__ import annotations

import os
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from hcflask.engine import actions
from hcflask.engine.service import corelease, hosts
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Alert, CoreLease, Host, Test, utcnow
from tests.conftest import make_app
from tests.factories import make_queue, make_template


def _expire(app: Flask, host: str) -> None:
    """What a pause does: neither the core lease nor the host lease is renewed any more."""
    with app.app_context():
        past = utcnow() - timedelta(seconds=55)
        db.session.execute(update(CoreLease).values(lease_until=past + timedelta(seconds=5), renewed_at=past))
        db.session.execute(update(Host).where(Host.name == host).values(
            heartbeat_at=past, lease_until=past + timedelta(seconds=5)))
        db.session.commit()


def test_a_core_that_lost_its_lease_writes_nothing_and_says_so_once(
        app: Flask, client, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    other = make_app(tmp_path / "instance", HOST_NAME="node-a")  # same database, another host
    with app.app_context():
        hosts.claim(core=True)
        slow = corelease.CoreRole()
        assert slow.acquire() and slow.epoch == 1
    app.extensions["hc_core_role"] = slow
    with other.app_context():
        hosts.claim()
        taker = corelease.CoreRole()
        assert not taker.acquire(), "a live lease is not taken"
    _expire(app, "testhost")
    with other.app_context():
        hosts.claim()
    body = client.get("/healthz").get_json()
    assert client.get("/healthz").status_code == 503
    assert any(r.startswith("no core for 55 s: testhost holds it, heartbeat 55 s old") for r in body["reasons"]), body
    with other.app_context():
        assert taker.acquire() and taker.epoch == 2
        alert = db.session.scalars(select(Alert).where(Alert.kind == "core")).one()
        assert alert.title == "core host testhost stopped answering"
        assert "its heartbeat is 55 s old; node-a took the core role (epoch 2)" in alert.message
        make_queue("q1")
        test_id = actions.start_test(make_template(), actor="tests").id
    capfd.readouterr()
    core_tick(app)  # the old core wakes up: its tick would start the due test
    with app.app_context():
        assert db.session.get_one(Test, test_id).state == "scheduled", "the fenced core wrote"
        assert db.session.get_one(Test, test_id).host is None
    assert not slow.held and not slow.renew(0.0)
    fenced = [line for line in capfd.readouterr().err.splitlines() if "lost the core role" in line]
    assert fenced == ["ERROR [hcflask.engine] fenced: this host (testhost) lost the core role it held at epoch 1 "
                      "(node-a took the core role at epoch 2); it writes nothing as core and is a plain host now"]
    core_tick(app)
    assert "lost the core role" not in capfd.readouterr().err
    with other.app_context():  # the new core has not run its core ticks yet: not a failure, for a while
        db.session.execute(update(Host).where(Host.name == "node-a").values(started_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    reasons = other.test_client().get("/healthz").get_json()["reasons"]
    assert not [r for r in reasons if r.startswith(("core tick", "actions tick"))], reasons
    with other.app_context():
        db.session.execute(update(CoreLease).values(taken_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    reasons = other.test_client().get("/healthz").get_json()["reasons"]
    assert "actions tick has not run on node-a since it took the core role 3600 s ago" in reasons, reasons
    other.extensions["hc_core_role"] = taker
    core_tick(other)  # the new core starts it, and closes the alert once testhost answers again
    with app.app_context():
        hosts.claim()
    core_tick(other)
    with other.app_context():
        assert db.session.get_one(Test, test_id).state == "running"
        assert db.session.scalars(select(Alert).where(Alert.kind == "core")).one().closed_at is not None
    assert client.get("/healthz").get_json()["core"]["host"] == "node-a"


def test_a_core_tick_stuck_past_the_lease_is_not_renewed_and_logged_once(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite, one host: the heartbeat stops renewing a core whose tick is stuck, and says so once."""
    with app.app_context():
        hosts.claim(core=True)
        role = corelease.CoreRole()
        assert role.acquire()
        until = db.session.get_one(CoreLease, 1).lease_until
        assert role.renew(busy_seconds=61.0) and role.renew(busy_seconds=62.0)
        db.session.expire_all()
        assert db.session.get_one(CoreLease, 1).lease_until == until, "renewed while stuck"
        stuck = [r.getMessage() for r in caplog.records if "core tick busy" in r.getMessage()]
        assert len(stuck) == 1 and stuck[0].startswith("core tick busy for 61 s, longer than the core lease (60 s)")
        assert role.renew(busy_seconds=1.0)
        db.session.expire_all()
        assert db.session.get_one(CoreLease, 1).lease_until > until


def test_a_restart_after_kill_9_takes_the_role_at_once(app: Flask) -> None:
    """The lease's holder ran on this machine and its process is gone: no need to wait for the lease."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with app.app_context():
        now = utcnow()
        db.session.add(CoreLease(id=1, holder="testhost", service_id=f"{socket.gethostname()}:{gone.pid}:dead",
                                 epoch=4, lease_until=now + timedelta(seconds=60), renewed_at=now))
        db.session.commit()
        role = corelease.CoreRole()
        assert role.acquire() and role.epoch == 5
        db.session.execute(update(CoreLease).values(service_id=f"{socket.gethostname()}:{os.getpid()}:alive"))
        db.session.commit()
        assert not corelease.CoreRole().acquire(), "a live holder's lease was taken"

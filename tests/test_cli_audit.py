"""The audit log of the command line, and one name per person everywhere.

Every write attempt from ``hc`` is recorded, refused ones with their reason;
commands that only read (``hc test report``, lists) are not.  The person at
the command line is ``cli:<unix user>`` in the audit log, queue events,
robot events and tests alike; on the web it is the user name.
"""
from __future__ import annotations

import getpass

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import AuditEntry, QueueEvent, RobotEvent, Test, User
from tests.conftest import csrf_token
from tests.factories import make_queue, make_template, make_test

ME = f"cli:{getpass.getuser()}"


def _entries(app: Flask) -> list[tuple[str, str, str, int, str, str]]:
    with app.app_context():
        return [(e.actor, e.via, e.action, e.status, e.target, e.reason)
                for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_refused_commands_are_recorded_reads_are_not(app: Flask, runner: FlaskCliRunner) -> None:
    with app.app_context():
        make_queue("q1")
        make_test(make_template("t1", queues=["q1"]), app)
    assert runner.invoke(args=["test", "report", "1"]).exit_code == 0
    assert runner.invoke(args=["queue", "list"]).exit_code == 0
    assert runner.invoke(args=["queue", "remove", "nosuch", "--yes"]).exit_code != 0
    assert runner.invoke(args=["queue", "remove", "q1"], input="n\n").exit_code != 0
    assert runner.invoke(args=["queue", "set-status", "q1", "sideways"]).exit_code != 0
    assert runner.invoke(args=["queue", "set-status", "q1", "offline", "--reason", "disk swap"]).exit_code == 0
    entries = _entries(app)
    assert [e[:5] for e in entries] == [
        (ME, "cli", "queue remove", 1, "nosuch"),
        (ME, "cli", "queue remove", 1, "q1"),
        (ME, "cli", "queue set-status", 1, "q1 sideways"),
        (ME, "cli", "queue set-status", 0, "q1 offline"),
    ]
    reasons = [e[5] for e in entries]
    assert "nosuch" in reasons[0] and reasons[1] == "not confirmed" and "status" in reasons[2] and reasons[3] == ""


def test_one_name_per_person(app: Flask, runner: FlaskCliRunner, client: FlaskClient) -> None:
    with app.app_context():
        make_queue("q1")
        make_template("t1", queues=["q1"])
        user = User(username="alice", role="operator")
        user.set_password("alice password")
        db.session.add(user)
        db.session.commit()
    assert runner.invoke(args=["queue", "set-status", "q1", "offline"]).exit_code == 0
    assert runner.invoke(args=["robot", "disable", "--reason", "maintenance"]).exit_code == 0
    assert runner.invoke(args=["test", "start", "t1"]).exit_code == 0
    token = csrf_token(client)
    client.post("/login", data={"username": "alice", "password": "alice password", "csrf_token": token})
    token = csrf_token(client, "/queues/q1")
    assert client.post("/queues/q1/status", data={"csrf_token": token, "status": "online"}).status_code == 302
    assert client.post("/robot/switch", data={"csrf_token": token, "enabled": "1"}).status_code == 302
    assert client.post("/templates/1/start", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        queue_events = [e.actor for e in db.session.scalars(select(QueueEvent).order_by(QueueEvent.id))]
        robot_events = [e.actor for e in db.session.scalars(
            select(RobotEvent).where(RobotEvent.kind == "switch").order_by(RobotEvent.id))]
        tests = [t.created_by for t in db.session.scalars(select(Test).order_by(Test.id))]
    audit = [e[0] for e in _entries(app)]
    assert queue_events == robot_events == tests == [ME, "alice"]
    assert audit == [ME, ME, ME, "alice", "alice", "alice"]

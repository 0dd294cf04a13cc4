"""Secrets never shown, sessions, login throttling, token scopes/expiry/revocation, the audit log."""
from __future__ import annotations

import getpass
import logging
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from hcflask.config import DICT_SECTIONS
from hcflask.engine.notify import deliver, enqueue, event_data
from hcflask.engine.robot.rules import check_config
from hcflask.extensions import db
from hcflask.models import ApiToken, AuditEntry, RobotEvent, User, utcnow
from tests.conftest import ADMIN_PASSWORD, csrf_token, make_app
from tests.factories import make_queue, template_doc

SECRETS = ("s3cr3tpath", "s3cr3tquery", "s3cr3theader", "s3cr3targ", "s3cr3tuser")
ROBOT_READS = ["/robot", "/robot?kind=action", "/overview", "/queues/q1", "/metrics", "/api/v1/robot/status",
               "/api/v1/robot/events", "/api/v1/robot/events?kind=action", "/api/v1/robot/alerts",
               "/api/v1/robot/tiles", "/api/v1/robot/bands", "/api/v1/robot/metrics",
               "/api/v1/overview/excluded", "/api/v1/overview/jobs", "/api/v1/overview/heatmap",
               "/api/v1/overview/availability"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_action_secrets_are_never_shown_to_an_anonymous_reader(app: Flask, client: FlaskClient,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = f"http://s3cr3tuser:pw@127.0.0.1:{port}/hook/s3cr3tpath?token=s3cr3tquery"
    actions = {"local": {"exclude": [
        {"type": "webhook", "url": hook, "retries": 0, "timeout": 2, "headers": {"X-Token": "s3cr3theader"}},
        {"type": "command", "argv": ["/nonexistent/notify-ops", "--token=s3cr3targ", "{queue}"]},
        {"type": "command", "name": "pager", "argv": ["/nonexistent/page", "s3cr3targ"]},
    ]}}
    config = {**DICT_SECTIONS["ROBOT"], "actions": actions, "action_retries": 0}
    check_config(config)
    app.config["ROBOT"] = config
    with app.app_context(), caplog.at_level(logging.WARNING):
        make_queue("q1")
        event = RobotEvent(kind="exclude", queue="q1", backend="local", rule="last_failed_in_one",
                           message="the last 3 jobs failed", job_ids=[1])
        db.session.add(event)
        db.session.flush()
        enqueue(event, event_data(event))
        db.session.commit()
        assert deliver() == {"delivered": 0, "retry": 0, "failed": 3}
        rows = db.session.scalars(db.select(RobotEvent).where(RobotEvent.kind == "action")
                                  .order_by(RobotEvent.id)).all()
        assert rows[0].message.startswith(f"POST to http://127.0.0.1:{port}:")
        assert "notify-ops" in rows[1].message and "pager" in rows[2].message
    assert all(secret not in caplog.text for secret in SECRETS), caplog.text
    for url in ROBOT_READS:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.get_data(as_text=True)
        assert all(secret not in body for secret in SECRETS), (url, [s for s in SECRETS if s in body])
    alerts = client.get("/api/v1/robot/alerts").get_json()["items"]
    assert {a["key"] for a in alerts} == {"action:local.exclude.0", "action:local.exclude.1",
                                          "action:local.exclude.2"}


def test_session_cookie_is_samesite_and_secure_when_configured(tmp_path: Path, admin_client: FlaskClient) -> None:
    app = make_app(tmp_path / "secure", SERVER_SECURE_COOKIES=True)
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax" and app.config["SESSION_COOKIE_SECURE"] is True
    client = app.test_client()
    with app.app_context():
        user = User(username="a", role="admin")
        user.set_password(ADMIN_PASSWORD)
        db.session.add(user)
        db.session.commit()
    response = client.post("/login", data={"username": "a", "password": ADMIN_PASSWORD,
                                           "csrf_token": csrf_token(client)})
    cookie = response.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_failed_logins_are_throttled(client: FlaskClient, admin: User) -> None:
    codes = []
    for _ in range(12):
        codes.append(client.post("/login", data={"username": "admin", "password": "wrong",
                                                 "csrf_token": csrf_token(client)}).status_code)
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    # a correct password is refused too while throttled: guessing gains nothing
    good = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                       "csrf_token": csrf_token(client)})
    assert good.status_code == 429


def _token(app: Flask, admin: User, scope: str, **kwargs: object) -> tuple[int, str]:
    with app.app_context():
        row, token = ApiToken.issue(db.session.get(User, admin.id), scope, scope, **kwargs)  # type: ignore[arg-type]
        db.session.commit()
        return row.id, token


def test_token_scopes_expiry_and_revocation(app: Flask, client: FlaskClient, admin: User) -> None:
    app.config["READ_REQUIRES_LOGIN"] = True
    _, read = _token(app, admin, "read")
    _, write = _token(app, admin, "admin")
    _, old = _token(app, admin, "admin", expires_at=utcnow() - timedelta(seconds=1))
    assert client.get("/api/v1/queues").status_code == 401
    assert client.get("/api/v1/queues", headers=auth(read)).status_code == 200
    assert client.get("/metrics", headers=auth(read)).status_code == 200
    body = {"name": "q", "backend": "local", "options": {}}
    refused = client.post("/api/v1/queues", json=body, headers=auth(read))
    assert refused.status_code == 403 and "scope" in refused.get_json()["error"]["reason"]
    assert client.post("/api/v1/queues", json=body, headers=auth(old)).status_code == 401
    assert client.post("/api/v1/queues", json=body, headers=auth(write)).status_code == 201
    with app.app_context():
        row = db.session.scalar(db.select(ApiToken).where(ApiToken.scope == "admin", ApiToken.expires_at.is_(None)))
        row.revoked_at = utcnow()
        db.session.commit()
    assert client.get("/api/v1/queues", headers=auth(write)).status_code == 401


def test_token_commands(runner: FlaskCliRunner, app: Flask, admin: User) -> None:
    created = runner.invoke(args=["token", "create", "admin", "--name", "grafana", "--scope", "read",
                                  "--expires", "90d"])
    assert created.exit_code == 0 and created.output.startswith("hct_")
    listed = runner.invoke(args=["token", "list"]).output
    assert "grafana" in listed and "read" in listed and "active" in listed
    assert created.output.strip() not in listed
    bad = runner.invoke(args=["token", "create", "admin", "--expires", "soon"])
    assert bad.exit_code != 0 and "expires:" in bad.output
    assert runner.invoke(args=["token", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(args=["token", "list"]).output
    again = runner.invoke(args=["token", "revoke", "1"])
    assert again.exit_code != 0 and "revoked already" in again.output
    with app.app_context():
        entries = [(e.actor, e.action, e.target, e.status) for e in db.session.scalars(db.select(AuditEntry))]
    me = f"cli:{getpass.getuser()}"  # the refused attempts too: the bad --expires, the second revoke
    assert entries == [(me, "token create", "admin", 0), (me, "token create", "admin", 1),
                       (me, "token revoke", "1", 0), (me, "token revoke", "1", 1)]


def test_tokens_page_creates_and_revokes_with_a_confirmation(admin_client: FlaskClient, app: Flask) -> None:
    page = admin_client.post("/tokens", data={"csrf_token": csrf_token(admin_client, "/tokens"), "name": "ci",
                                              "scope": "read", "expires": "12h"})
    assert page.status_code == 200
    token = re.search(r"<code>(hct_[^<]+)</code>", page.get_data(as_text=True))
    assert token is not None
    assert admin_client.get("/api/v1/queues", headers=auth(token.group(1))).status_code == 200
    confirm = admin_client.get("/tokens/1/revoke")
    assert "Revoke token 1?" in confirm.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ApiToken, 1).revoked_at is None  # asking is not revoking
    done = admin_client.post("/tokens/1/revoke", data={"csrf_token": csrf_token(admin_client, "/tokens/1/revoke")})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(ApiToken, 1).revoked_at is not None
    bad = admin_client.post("/tokens", data={"csrf_token": csrf_token(admin_client, "/tokens"), "name": "x",
                                             "scope": "read", "expires": "forever"})
    assert bad.status_code == 400 and "expected a lifetime" in bad.get_data(as_text=True)


def test_admin_writes_are_audited(admin_client: FlaskClient, api_token: str, app: Flask) -> None:
    """The admin's session and token on one client (writes through both), an anonymous one beside it."""
    client = admin_client
    client.post("/api/v1/templates", json=template_doc(), headers=auth(api_token),
                environ_base={"REMOTE_ADDR": "192.0.2.7"})
    client.post("/api/v1/templates", json={"name": "bad"}, headers=auth(api_token))
    admin_client.post("/templates/1/active", data={"csrf_token": csrf_token(admin_client, "/templates/1")})
    anonymous = app.test_client()
    assert anonymous.post("/api/v1/queues", json={"name": "q", "backend": "local"}).status_code == 401
    items = anonymous.get("/api/v1/audit", headers=auth(api_token)).get_json()["items"]
    seen = [(i["actor"], i["via"], i["action"], i["status"]) for i in reversed(items)]
    # one name per person, through the API or the pages; the anonymous refusal is kept, with its reason
    assert seen == [("admin", "api", "POST /api/v1/templates", 201), ("admin", "api", "POST /api/v1/templates", 400),
                    ("admin", "ui", "POST /templates/1/active", 302), ("anonymous", "api", "POST /api/v1/queues", 401)]
    assert "bearer token is required" in items[0]["reason"] and items[1]["reason"] == ""
    assert items[2]["reason"] and items[-1]["remote_addr"] == "192.0.2.7"
    assert anonymous.get("/api/v1/audit").status_code == 401
    page = admin_client.get("/audit").get_data(as_text=True)
    assert "POST /templates/1/active" in page and "192.0.2.7" in page


def test_audit_needs_an_admin(app: Flask) -> None:
    assert app.test_client().get("/api/v1/audit").status_code == 401
    assert app.test_client().get("/audit").status_code == 302

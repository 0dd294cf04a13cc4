"""The role matrix, through the pages and the API, for one user of each role.

The expected matrix is written out here by hand (the issue's words), not
computed from :data:`hcflask.access.PERMISSIONS`, so a wrong row in the table
fails this test.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask.access import PERMISSIONS, ROLES, markdown_table
from hcflask.extensions import db
from hcflask.models import ApiToken, AuditEntry, Template, Test, User
from tests.conftest import csrf_token
from tests.factories import make_queue, make_template, template_doc

PASSWORD = "role matrix password"
#: what each role may do, by hand: viewer reads; operator runs tests, queue status, robot; admin everything
EXPECTED = {
    "viewer": set(),
    "operator": {"test.start", "test.cancel", "queue.status", "robot.switch"},
    "admin": {"test.start", "test.cancel", "queue.status", "robot.switch", "queue.edit", "template.edit",
              "user.manage", "audit.read"},
}


@pytest.fixture
def people(app: Flask) -> dict[str, str]:
    """One local user per role, each with an ``admin``-scope token (the scope does not lift a role)."""
    tokens = {}
    with app.app_context():
        make_queue("q1")
        make_template("t1", queues=["q1"])
        for role in ROLES:
            user = User(username=role, role=role)
            user.set_password(PASSWORD)
            db.session.add(user)
            _, tokens[role] = ApiToken.issue(user, "matrix", scope="admin")
        db.session.commit()
    return tokens


def _api_attempts(client: FlaskClient, token: str, n: int) -> dict[str, int]:
    """One request per action; the status each got."""
    headers = {"Authorization": f"Bearer {token}"}
    started = client.post("/api/v1/tests", json={"template": "t1"}, headers=headers)
    with client.application.app_context():
        test_id = db.session.scalar(select(Test.id).order_by(Test.id.desc())) or 0
    return {
        "test.start": started.status_code,
        "test.cancel": client.post(f"/api/v1/tests/{test_id}/cancel", json={}, headers=headers).status_code,
        "queue.status": client.post("/api/v1/queues/q1/status", json={"status": "test"}, headers=headers).status_code,
        "robot.switch": client.post("/api/v1/robot/switch", json={"enabled": True}, headers=headers).status_code,
        "queue.edit": client.post("/api/v1/queues", json={"name": f"new{n}", "backend": "local"},
                                  headers=headers).status_code,
        "template.edit": client.post("/api/v1/templates", json=template_doc(f"tt{n}", ["q1"]),
                                     headers=headers).status_code,
        "audit.read": client.get("/api/v1/audit", headers=headers).status_code,
    }


def test_api_role_matrix(app: Flask, client: FlaskClient, people: dict[str, str]) -> None:
    for n, role in enumerate(ROLES):
        got = _api_attempts(client, people[role], n)
        for action, status in got.items():
            if action in EXPECTED[role]:
                assert status in (200, 201), (role, action, status)
            else:
                assert status == 403, (role, action, status)


def _login(client: FlaskClient, username: str) -> None:
    token = csrf_token(client)
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302


def _ui_attempts(client: FlaskClient, app: Flask, n: int) -> dict[str, int]:
    token = csrf_token(client, "/queues/q1")
    with app.app_context():
        template_id = db.session.scalar(select(Template.id).where(Template.name == "t1"))
    started = client.post(f"/templates/{template_id}/start", data={"csrf_token": token})
    with app.app_context():
        test_id = db.session.scalar(select(Test.id).order_by(Test.id.desc())) or 0
    form = {"csrf_token": token}
    return {
        "test.start": started.status_code,
        "test.cancel": client.post(f"/tests/{test_id}/cancel", data=form).status_code,
        "queue.status": client.post("/queues/q1/status", data={**form, "status": "test", "reason": "r"}).status_code,
        "robot.switch": client.post("/robot/switch", data={**form, "enabled": "1"}).status_code,
        "queue.edit": client.post("/queues/new", data={**form, "name": f"ui{n}", "backend": "local"}).status_code,
        "template.edit": client.get("/templates/new").status_code,
        "user.manage": client.get("/users").status_code,
        "audit.read": client.get("/audit").status_code,
    }


def test_pages_role_matrix(app: Flask, people: dict[str, str]) -> None:
    for n, role in enumerate(ROLES):
        client = app.test_client()
        _login(client, role)
        for action, status in _ui_attempts(client, app, n).items():
            if action in EXPECTED[role]:
                assert status in (200, 302), (role, action, status)
            else:
                assert status == 403, (role, action, status)
    with app.app_context():
        refused = db.session.scalars(select(AuditEntry).where(AuditEntry.status == 403)).all()
    assert refused and all(e.reason.startswith(f"role {e.actor} may not ") for e in refused)
    assert {e.actor for e in refused} == {"viewer", "operator"}


def test_every_write_route_checks_a_permission(app: Flask, client: FlaskClient) -> None:
    """An anonymous write to any route is refused (401, or the login page), never done."""
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) & {"POST", "PUT", "DELETE", "PATCH"}
        if not methods or rule.endpoint.startswith("auth.login") or rule.endpoint == "auth.logout":
            continue
        url = rule.rule.replace("<int:", "<").replace("<any(disable, enable):what>", "disable")
        for part in ("<test_id>", "<template_id>", "<band_id>", "<user_id>", "<token_id>", "<job_id>"):
            url = url.replace(part, "1")
        url = url.replace("<key>", "q1").replace("<name>", "q1")
        for method in methods:
            response = client.open(url, method=method, json={})
            assert response.status_code in (302, 400, 401), (method, url, response.status_code)
            if response.status_code == 302:
                assert "/login" in response.headers["Location"], (method, url)


def test_the_table_is_what_the_docs_show() -> None:
    """docs/admin.md carries the table row for row (a change to the table must update the docs)."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "admin.md").read_text()
    assert markdown_table() in doc
    assert set(PERMISSIONS) >= set().union(*EXPECTED.values())


def test_token_scope_caps_the_role(app: Flask, client: FlaskClient, people: dict[str, str]) -> None:
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        assert admin is not None
        _, operate = ApiToken.issue(admin, "operate only", scope="operate")
        db.session.commit()
    headers = {"Authorization": f"Bearer {operate}"}
    assert client.post("/api/v1/queues/q1/status", json={"status": "test"}, headers=headers).status_code == 200
    refused = client.post("/api/v1/queues", json={"name": "capped", "backend": "local"}, headers=headers)
    assert refused.status_code == 403 and "scope caps" in refused.get_json()["error"]["reason"]


def test_disabled_user_cannot_sign_in_or_use_tokens(app: Flask, client: FlaskClient, people: dict[str, str],
                                                     runner: object) -> None:
    from flask.testing import FlaskCliRunner

    assert isinstance(runner, FlaskCliRunner)
    assert runner.invoke(args=["user", "disable", "operator"]).exit_code == 0
    headers = {"Authorization": f"Bearer {people['operator']}"}
    assert client.post("/api/v1/robot/switch", json={"enabled": True}, headers=headers).status_code == 401
    token = csrf_token(client)
    refused = client.post("/login", data={"username": "operator", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 401
    assert runner.invoke(args=["user", "enable", "operator"]).exit_code == 0
    assert client.post("/api/v1/robot/switch", json={"enabled": True}, headers=headers).status_code == 200


def test_user_add_roles(app: Flask, runner: Any) -> None:
    """The first local user of an instance is its admin; later ones are viewers unless --role says."""
    first = runner.invoke(args=["user", "add", "root1", "--password", "long enough"])
    assert first.exit_code == 0 and "role admin" in first.output
    assert "role viewer" in runner.invoke(args=["user", "add", "ann", "--password", "long enough"]).output
    assert "role operator" in runner.invoke(args=["user", "add", "ann", "--password", "long enough",
                                                    "--role", "operator"]).output
    bad = runner.invoke(args=["user", "add", "x", "--password", "long enough", "--role", "boss"])
    assert bad.exit_code == 2 and "--role" in bad.output
    listed = runner.invoke(args=["user", "list"]).output
    assert re.search(r"ann\s+operator\s+local", listed) and re.search(r"root1\s+admin\s+local", listed)


def test_admin_disables_a_user_from_the_page(app: Flask, people: dict[str, str]) -> None:
    operator, admin = app.test_client(), app.test_client()
    _login(operator, "operator")
    _login(admin, "admin")
    with app.app_context():
        target = db.session.scalar(select(User.id).where(User.username == "operator"))
        me = db.session.scalar(select(User.id).where(User.username == "admin"))
    token = csrf_token(admin, "/users")
    assert admin.post(f"/users/{target}/disable", data={"csrf_token": token}).status_code == 302
    assert operator.get("/account").status_code == 302  # the session ended: back to the login page
    refused = admin.post(f"/users/{me}/disable", data={"csrf_token": token}, follow_redirects=True)
    assert "you cannot disable yourself" in refused.get_data(as_text=True)
    assert "disabled" in admin.get("/users").get_data(as_text=True)

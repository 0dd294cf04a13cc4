"""The admin's pages and API without a browser: queue and template changes through the
API, the queue form where a backend is missing, users, error pages, the home page's
queue status and real end times."""
from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from hcflask import backends
from hcflask.engine import actions, status
from hcflask.extensions import db
from hcflask.models import Queue, Template, Test, User
from tests.conftest import csrf_token, make_app
from tests.factories import make_queue, make_template, template_doc


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_changes_and_deletes_a_queue(client: FlaskClient, api_token: str) -> None:
    client.post("/api/v1/queues", json={"name": "q1", "backend": "local"}, headers=auth(api_token))
    changed = client.put("/api/v1/queues/q1", json={"options": {"slots": 3}, "description": "d",
                                                    "autoexclusion": False}, headers=auth(api_token))
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["options"] == {"slots": 3} and changed.get_json()["autoexclusion"] is False
    moved = client.put("/api/v1/queues/q1", json={"backend": "slurm"}, headers=auth(api_token))
    assert moved.status_code == 409 and moved.get_json()["error"]["field"] == "backend"
    renamed = client.put("/api/v1/queues/q1", json={"name": "q2"}, headers=auth(api_token))
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "q2"
    renamed = client.put("/api/v1/queues/q2", json={"name": "q1", "description": 5}, headers=auth(api_token))
    assert renamed.status_code == 400 and client.get("/api/v1/queues/q2").status_code == 200
    assert client.put("/api/v1/queues/q2", json={"autoexclusion": "no"},
                      headers=auth(api_token)).get_json()["error"]["field"] == "autoexclusion"
    assert client.delete("/api/v1/queues/q2").status_code == 401
    deleted = client.delete("/api/v1/queues/q2", headers=auth(api_token))
    assert deleted.status_code == 200 and deleted.get_json()["deleted"] == "q2"
    assert client.get("/api/v1/queues").get_json()["total"] == 0
    assert client.delete("/api/v1/queues/q2", headers=auth(api_token)).status_code == 404


def test_api_template_active_and_delete(client: FlaskClient, api_token: str, app: Flask) -> None:
    with app.app_context():
        make_queue("q1")  # a test of a template matching no queue is refused
    created = client.post("/api/v1/templates", json={**template_doc("t1"), "active": False}, headers=auth(api_token))
    assert created.status_code == 201 and created.get_json()["active"] is False
    again = client.post("/api/v1/templates/t1/active", json={"active": True}, headers=auth(api_token))
    assert again.status_code == 200 and again.get_json()["active"] is True
    assert client.post("/api/v1/templates/t1/active", json={"active": "yes"},
                       headers=auth(api_token)).get_json()["error"]["field"] == "active"
    assert client.post("/api/v1/templates/t1/active", json={},
                       headers=auth(api_token)).get_json()["error"]["field"] == "active"
    both = client.put("/api/v1/templates/t1", json={**template_doc("t1", lifetime=60), "active": False},
                      headers=auth(api_token)).get_json()
    assert both["lifetime"] == 60 and both["active"] is False
    client.post("/api/v1/templates/t1/active", json={"active": True}, headers=auth(api_token))
    started = client.post("/api/v1/tests", json={"template": "t1"}, headers=auth(api_token)).get_json()
    deleted = client.delete("/api/v1/templates/t1", headers=auth(api_token)).get_json()
    assert deleted == {"deleted": "t1", "tests_kept": 1}
    test = client.get(f"/api/v1/tests/{started['id']}").get_json()
    assert test["state"] == "cancelled" and test["template_id"] is None and test["template"] == "t1"


def test_queue_form_lists_only_usable_backends(admin_client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """panda-client is installed here, so its absence is made by hiding the module: the one
    fake of this file, since a missing client cannot be produced in the same interpreter."""
    monkeypatch.setitem(sys.modules, "pandaclient", None)
    monkeypatch.delitem(sys.modules, "hcflask.backends.panda", raising=False)
    monkeypatch.delitem(backends._REGISTRY, "panda", raising=False)
    page = admin_client.get("/queues/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<option value="panda"' not in html and '<option value="local"' in html
    assert "panda</strong>: backend &#39;panda&#39; is not usable here" in html
    token = csrf_token(admin_client, "/queues/new")
    refused = admin_client.post("/queues/new", data={"name": "p", "backend": "panda", "csrf_token": token})
    assert refused.status_code == 400 and "Not a valid choice" in refused.get_data(as_text=True)


def test_queue_pages_edit_delete_and_page_jobs(app: Flask, admin_client: FlaskClient) -> None:
    with app.app_context():
        make_queue("q1")
    token = csrf_token(admin_client, "/queues/q1/edit")
    saved = admin_client.post("/queues/q1/edit", data={"name": "q1", "backend": "local", "options": "slots: 2",
                                                       "description": "edited", "csrf_token": token})
    assert saved.status_code == 302
    with app.app_context():
        queue = db.session.scalar(select(Queue))
        assert queue.options == {"slots": 2} and queue.description == "edited" and queue.autoexclusion is False
    page = admin_client.get("/queues/q1?page=2").get_data(as_text=True)
    assert "No jobs yet." in page and 'data-confirm="Delete queue q1?' in page
    assert admin_client.post("/queues/q1/delete", data={"csrf_token": token}).status_code == 302
    assert admin_client.get("/queues/q1").status_code == 404


def test_users_page_removes_others_not_oneself(app: Flask, admin_client: FlaskClient) -> None:
    with app.app_context():
        other = User(username="bob", role="admin")
        other.set_password("long enough")
        db.session.add(other)
        db.session.commit()
        bob, me = other.id, db.session.scalar(select(User.id).where(User.username == "admin"))
    page = admin_client.get("/users").get_data(as_text=True)
    assert 'data-user="bob"' in page and 'data-confirm="Remove user bob' in page
    token = csrf_token(admin_client, "/users")
    assert admin_client.post(f"/users/{bob}/remove", data={"csrf_token": token}).status_code == 302
    assert admin_client.post(f"/users/{me}/remove", data={"csrf_token": token}, follow_redirects=True) \
        .get_data(as_text=True).count("you cannot remove yourself") == 1
    with app.app_context():
        assert db.session.scalars(select(User.username)).all() == ["admin"]


def test_users_page_needs_a_login(client: FlaskClient) -> None:
    assert client.get("/users").status_code == 302


def test_error_pages_have_the_navigation(app: Flask, client: FlaskClient) -> None:
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    html = missing.get_data(as_text=True)
    assert "404 · Not Found" in html and 'href="/queues"' in html and "<header>" in html
    assert client.get("/api/v1/nothing").get_json()["error"]["status"] == 404
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_expired_form_is_a_page_not_a_bare_error(tmp_path, admin) -> None:  # noqa: ANN001
    app = make_app(tmp_path / "csrf", WTF_CSRF_ENABLED=True)
    client = app.test_client()
    response = client.post("/login", data={"username": "x", "password": "y", "csrf_token": "stale"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "The form expired" in html and "CSRF" in html and 'href="/tests"' in html


def test_server_error_page(tmp_path) -> None:  # noqa: ANN001
    """A real failure (a table gone from the database) gives the styled 500 page."""
    app = make_app(tmp_path / "broken", TESTING=False)
    with app.app_context():
        db.session.execute(text("DROP TABLE test"))
        db.session.commit()
    response = app.test_client().get("/tests")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "500 · Internal server error" in html and 'href="/queues"' in html and "Traceback" not in html
    api = app.test_client().get("/api/v1/tests")
    assert api.status_code == 500 and api.get_json()["error"]["status"] == 500


def test_home_shows_queue_status_real_end_and_plain_patterns(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_queue("q1")
        make_queue("q2")
        q2 = db.session.scalar(select(Queue).where(Queue.name == "q2"))
        assert status.exclude(q2.id, "robot", "robot", "3 failures", "exclude_last", [1]).done
        ended = actions.start_test(make_template("t1", queues=["q1", "q*"]), actor="tests")
        actions.cancel_test(ended, "tests")
        finished = ended.finished_at
        assert ended.end_at - finished > timedelta(minutes=30)
        actions.start_test(make_template("t2", queues=["q*"]), actor="tests")
    html = client.get("/").get_data(as_text=True)
    assert "Excluded now (1):" in html and 'href="/queues/q2"' in html
    # a test that never started lists its template's patterns, linked to no queue (it ran on none)
    assert '<span class="pattern" title="a name pattern of the template">q*</span>' in html
    assert 'href="/queues/q*"' not in html and 'href="/queues/q%2A"' not in html
    assert finished.strftime("%Y-%m-%d %H:%M:%S") in html


def test_deleted_queue_is_not_matched_by_new_tests(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_queue("q2")
        assert actions.delete_queue(db.session.scalar(select(Queue).where(Queue.name == "q2")), "tests") \
            == "queue q2 deleted"
        template = make_template("t1", queues=["q*"])
        from hcflask.engine.service.core import start_due_tests

        actions.start_test(template, actor="tests")
        start_due_tests()
        assert db.session.scalar(select(Test)).queue_names == ["q1"]
        assert db.session.scalar(select(Template)).active

"""Templates as files in the pages and the API (issue 25): import an uploaded file or pasted
text (CSRF, template.edit, audited), download the export, YAML and TOML request bodies by
Content-Type, warnings about queues that match nothing, and starting a test that matches none."""
from __future__ import annotations

import html
import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask import documents
from hcflask.extensions import db
from hcflask.models import AuditEntry, Template, Test, User
from tests.conftest import csrf_token
from tests.factories import make_queue, make_template

YAML = "name: from-file\nkind: functional\nqueues: [local, site-c]\nworkload:\n  script: echo hc-ok\n"
TOML = 'name = "tomled"\nqueues = ["local"]\n[workload]\nscript = "echo hc-ok"\n'


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="flash [a-z]+">([^<]*)</div>', page)]


def test_import_an_uploaded_file_then_pasted_text(admin_client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        make_queue("local")
    token = csrf_token(admin_client, "/templates/import")
    done = admin_client.post("/templates/import", data={"csrf_token": token, "format": "auto",
                                                        "file": (io.BytesIO(YAML.encode()), "t.yaml")},
                             content_type="multipart/form-data", follow_redirects=True)
    assert done.status_code == 200
    assert _flashes(done.get_data(as_text=True)) == [
        "Template from-file created.",
        "Warning: queues: 'site-c' matches no queue (a test runs only on the queues that exist when it starts)"]
    pasted = admin_client.post("/templates/import", data={"csrf_token": token, "format": "toml", "text": TOML},
                               follow_redirects=True)
    assert "Template tomled created." in _flashes(pasted.get_data(as_text=True))
    again = admin_client.post("/templates/import", data={"csrf_token": token, "format": "auto",
                                                         "text": YAML.replace("echo hc-ok", "echo hc-ok again")})
    assert again.status_code == 302
    with app.app_context():
        row = db.session.scalar(select(Template).where(Template.name == "from-file"))
        assert row.workload["script"] == "echo hc-ok again"
        actions = [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions.count("POST /templates/import") == 3


@pytest.mark.parametrize(("data", "words"), [
    ({"format": "auto"}, "file: choose a file or paste a template document"),
    ({"format": "auto", "text": "name: [unclosed"}, "file: pasted text: not valid YAML"),
    ({"format": "auto", "text": "name: x\nqueues: []\nworkload: {script: x}\n"},
     "queues: must be a non-empty list of queue names or glob patterns"),
    ({"format": "auto", "file": (io.BytesIO(b"name: x"), "t.txt")}, "file: t.txt: unknown format"),
    ({"format": "auto", "file": (io.BytesIO("name: caf\xe9".encode("latin-1")), "t.yaml")}, "not UTF-8"),
])
def test_a_bad_import_says_why_and_saves_nothing(admin_client: FlaskClient, app: Flask, data: dict[str, object],
                                                 words: str) -> None:
    page = admin_client.post("/templates/import", data={"csrf_token": csrf_token(admin_client, "/templates/import"),
                                                        **data}, content_type="multipart/form-data")
    assert page.status_code == 400
    assert any(words in flash for flash in _flashes(page.get_data(as_text=True))), page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Template)).first() is None
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "POST /templates/import" and entry.status == 400 and words.split(": ")[-1] in \
            entry.reason


def test_import_needs_csrf_and_the_permission(admin_client: FlaskClient, app: Flask) -> None:
    refused = admin_client.post("/templates/import", data={"text": YAML})
    assert refused.status_code == 400
    admin_client.get("/logout")
    with app.app_context():
        user = User(username="viewer", role="viewer")
        user.set_password("viewer password 1")
        db.session.add(user)
        db.session.commit()
    token = csrf_token(admin_client)
    admin_client.post("/login", data={"username": "viewer", "password": "viewer password 1", "csrf_token": token})
    assert admin_client.get("/templates/import").status_code == 403
    with app.app_context():
        assert db.session.scalars(select(Template)).first() is None


def test_the_template_page_downloads_its_export(admin_client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        row = make_template("t1", queues=["local"])
        expected = documents.dump(row.to_file(), "toml")
    got = admin_client.get(f"/templates/{row.id}/export.toml")
    assert got.get_data(as_text=True) == expected
    assert got.headers["Content-Disposition"] == 'attachment; filename="t1.toml"'
    assert "image" not in got.get_data(as_text=True)


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/yaml", YAML), ("application/x-yaml", YAML), ("application/toml", TOML.replace("tomled",
                                                                                                 "from-file")),
    ("application/json", documents.dump(documents.parse(YAML, "yaml"), "json")),
])
def test_api_takes_yaml_and_toml_bodies(client: FlaskClient, api_token: str, content_type: str, body: str) -> None:
    created = client.post("/api/v1/templates", data=body, content_type=content_type, headers=auth(api_token))
    assert created.status_code == 201, created.get_json()
    answer = created.get_json()
    assert answer["name"] == "from-file" and answer["workload"]["script"] == "echo hc-ok"
    unmatched = [w for w in answer["warnings"] if "'site-c' matches no queue" in w]
    assert len(unmatched) == (0 if content_type == "application/toml" else 1)
    changed = client.put("/api/v1/templates/from-file", data=body.replace("echo hc-ok", "echo changed"),
                         content_type=content_type, headers=auth(api_token))
    assert changed.status_code == 200 and changed.get_json()["workload"]["script"] == "echo changed"


@pytest.mark.parametrize(("content_type", "body", "status", "words"), [
    ("application/yaml", "name: [unclosed", 400, "not valid YAML"),
    ("application/toml", "name = ", 400, "not valid TOML"),
    ("application/yaml", "- a\n- b\n", 400, "expected an object"),
    ("text/csv", "name,queues", 415, "Content-Type 'text/csv' is not read here"),
])
def test_api_bad_bodies_name_the_body(client: FlaskClient, api_token: str, content_type: str, body: str,
                                      status: int, words: str) -> None:
    answer = client.post("/api/v1/templates", data=body, content_type=content_type, headers=auth(api_token))
    error = answer.get_json()["error"]
    assert answer.status_code == status and error["field"] == "body" and words in error["reason"], error


def test_starting_a_test_matching_no_queue_is_refused_by_the_api_and_the_page(
        admin_client: FlaskClient, app: Flask, api_token: str) -> None:
    with app.app_context():
        template_id = make_template("t1", queues=["site-c"]).id
    answer = admin_client.post("/api/v1/tests", json={"template": "t1"}, headers=auth(api_token))
    assert answer.status_code == 409 and answer.get_json()["error"]["field"] == "queues"
    assert answer.get_json()["error"]["reason"].startswith("no queue matches site-c: a test of t1 would end in error")
    page = admin_client.post(f"/templates/{template_id}/start",
                             data={"csrf_token": csrf_token(admin_client, f"/templates/{template_id}")},
                             follow_redirects=True)
    assert any(f.startswith("queues: no queue matches site-c") for f in _flashes(page.get_data(as_text=True)))
    with app.app_context():
        assert db.session.scalars(select(Test)).first() is None


def test_the_form_warns_about_queues_matching_nothing(admin_client: FlaskClient, app: Flask) -> None:
    form = {"name": "t1", "queues": "site-c", "lifetime": "3600", "jobs_in_flight": "1", "max_jobs": "0",
            "max_running": "0", "script": "echo hc-ok", "cores": "1", "memory_mb": "0", "walltime": "600",
            "gpus": "0", "exit_code": "0"}
    page = admin_client.post("/templates/new", data={"csrf_token": csrf_token(admin_client, "/templates/new"),
                                                     **form}, follow_redirects=True)
    assert _flashes(page.get_data(as_text=True))[-2:] == [
        "Template t1 saved.",
        "Warning: queues: 'site-c' matches no queue (a test runs only on the queues that exist when it starts)"]

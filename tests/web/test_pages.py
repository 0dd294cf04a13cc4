"""Every page renders, escapes hostile strings, and guards writes."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import ApiToken, Job, Queue, Template, Test, User
from tests.conftest import csrf_token, make_app
from tests.factories import make_queue, make_template, make_test, run_ticks, template_doc

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def data(app: Flask) -> dict[str, int]:
    with app.app_context():
        make_queue("q1")
        template = make_template("t1", description=HOSTILE, script=f"echo '{HOSTILE}'; echo hc-ok value=3")
        test = make_test(template, app)
        run_ticks(app, lambda: db.session.scalar(select(Job.state)) == "succeeded")
        job = db.session.scalars(select(Job)).one()
        return {"template": template.id, "test": test.id, "job": job.id}


def test_every_page_renders(client: FlaskClient, data: dict[str, int]) -> None:
    for url in ["/", "/tests", f"/tests/{data['test']}", "/templates", f"/templates/{data['template']}",
                "/queues", "/queues/q1", f"/jobs/{data['job']}", "/login", "/api/v1/openapi.json",
                f"/tests/{data['test']}?state=succeeded&queue=q1", "/tests?state=running"]:
        response = client.get(url)
        assert response.status_code == 200, url


def test_missing_objects_are_404(client: FlaskClient) -> None:
    for url in ["/tests/999", "/templates/999", "/queues/nope", "/jobs/999"]:
        assert client.get(url).status_code == 404, url


def test_hostile_strings_are_escaped(client: FlaskClient, data: dict[str, int]) -> None:
    for url in [f"/templates/{data['template']}", "/templates", f"/jobs/{data['job']}"]:
        page = client.get(url).get_data(as_text=True)
        assert HOSTILE not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


def test_job_page_shows_output_metrics_and_history(client: FlaskClient, data: dict[str, int]) -> None:
    page = client.get(f"/jobs/{data['job']}").get_data(as_text=True)
    assert "hc-ok value=3" in page
    assert "<dt>value</dt><dd>3.0" in page
    assert "submitted" in page and "succeeded" in page


def test_home_page_counts(client: FlaskClient, data: dict[str, int]) -> None:
    page = client.get("/").get_data(as_text=True)
    assert f'data-test="{data["test"]}"' in page
    partial = client.get("/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in partial and f'data-test="{data["test"]}"' in partial


@pytest.mark.parametrize("url", ["/templates/new", "/queues/new"])
def test_write_pages_need_login(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_cancel_needs_login_and_csrf(client: FlaskClient, admin_client: FlaskClient, app: Flask,
                                     data: dict[str, int]) -> None:
    anonymous = app.test_client()
    assert anonymous.post(f"/tests/{data['test']}/cancel").status_code == 400  # no CSRF token
    refused = anonymous.post(f"/tests/{data['test']}/cancel", data={"csrf_token": csrf_token(anonymous)})
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]
    # logged in but no CSRF token: refused, test still running
    response = admin_client.post(f"/tests/{data['test']}/cancel")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(Test, data["test"]).state == "running"
    token = csrf_token(admin_client, f"/tests/{data['test']}")
    response = admin_client.post(f"/tests/{data['test']}/cancel", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Test, data["test"]).state == "cancelled"


def test_wrong_password_is_refused(client: FlaskClient, admin: object) -> None:
    token = csrf_token(client)
    response = client.post("/login", data={"username": "admin", "password": "nope", "csrf_token": token})
    assert response.status_code == 401
    assert "wrong password" in response.get_data(as_text=True)
    assert client.get("/templates/new").status_code == 302


def test_create_template_from_the_form(admin_client: FlaskClient, app: Flask) -> None:
    token = csrf_token(admin_client, "/templates/new")
    form = {
        "csrf_token": token, "name": "formed", "description": "made in the UI", "queues": "q1 q2*",
        "lifetime": "600", "jobs_in_flight": "2", "max_jobs": "0", "max_running": "0", "renew": "y",
        "script": 'echo "hc-ok value=5"', "image": "", "command": "", "cores": "1", "memory_mb": "0",
        "walltime": "60", "gpus": "0", "exit_code": "0", "must_match": "hc-ok\n", "must_not_match": "",
        "metrics": "value: {pattern: 'value=(?P<value>[0-9]+)', unit: s}",
    }
    response = admin_client.post("/templates/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        template = db.session.scalars(select(Template).where(Template.name == "formed")).one()
        assert template.queues == ["q1", "q2*"]
        assert template.renew is True and template.jobs_in_flight == 2
        assert template.workload["metrics"]["value"]["unit"] == "s"
    bad = dict(form, name="formed2", must_match="(unclosed", csrf_token=csrf_token(admin_client, "/templates/new"))
    response = admin_client.post("/templates/new", data=bad)
    assert response.status_code == 400
    assert "invalid regular expression" in response.get_data(as_text=True)


def test_edit_clone_and_deactivate(admin_client: FlaskClient, app: Flask, data: dict[str, int]) -> None:
    template_id = data["template"]
    page = admin_client.get(f"/templates/{template_id}/edit").get_data(as_text=True)
    assert 'value="t1"' in page
    clone = admin_client.get(f"/templates/{template_id}/clone").get_data(as_text=True)
    assert 'value="t1-copy"' in clone
    token = csrf_token(admin_client, f"/templates/{template_id}")
    admin_client.post(f"/templates/{template_id}/active", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(Template, template_id).active is False
        doc = template_doc("t1")
        assert doc["name"] == "t1"


def test_queue_status_change_is_recorded(admin_client: FlaskClient, app: Flask, data: dict[str, int]) -> None:
    token = csrf_token(admin_client, "/queues/q1")
    response = admin_client.post("/queues/q1/status", data={"csrf_token": token, "status": "offline",
                                                            "reason": "disk swap"})
    assert response.status_code == 302
    page = admin_client.get("/queues/q1").get_data(as_text=True)
    assert "<td>admin</td>" in page and "disk swap" in page
    with app.app_context():
        assert db.session.scalars(select(Queue)).one().status == "offline"


def test_read_requires_login_when_configured(tmp_path: object) -> None:
    from pathlib import Path

    app = make_app(Path(str(tmp_path)) / "locked", READ_REQUIRES_LOGIN=True)
    client = app.test_client()
    assert client.get("/").status_code == 302
    assert client.get("/login").status_code == 200
    assert client.get("/api/v1/queues").status_code == 401
    health = client.get("/healthz")  # liveness only: no scheduler in this test, and no details
    assert (health.status_code, health.get_json()) == (503, {"status": "failing"})
    assert client.get("/metrics").status_code == 401  # Prometheus scrapes with a token
    with app.app_context():
        user = User(username="scraper")
        user.set_password("long enough")
        db.session.add(user)
        _, token = ApiToken.issue(user, "prometheus")
        db.session.commit()
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status_code == 200 and "hc_" in scraped.get_data(as_text=True)


def test_open_alerts_and_outages_show_on_every_page(client: FlaskClient, app: Flask) -> None:
    from hcflask.engine.common import record_health
    from hcflask.engine.robot.alerts import raise_alert

    with app.app_context():
        raise_alert("outage", "outage", "central outage suspected: 3 of 4 queues failing",
                    "most common failure: exit 3: cvmfs not mounted")
        record_health("slurm", "sbatch: no answer within 30 s")
        db.session.commit()
    for url in ["/", "/queues", "/templates"]:
        page = client.get(url).get_data(as_text=True)
        assert "outage alert since" in page and "central outage suspected: 3 of 4 queues failing" in page, url
        assert "Backend slurm is unreachable" in page and "sbatch: no answer within 30 s" in page, url


def test_queue_form_shows_errors_next_to_the_field(admin_client: FlaskClient, app: Flask) -> None:
    form = {"csrf_token": csrf_token(admin_client, "/queues/new"), "name": "q9", "backend": "local",
            "options": "slots: 0", "description": ""}
    response = admin_client.post("/queues/new", data=form)
    assert response.status_code == 400
    assert '<div class="err">options.slots: must be at least 1, got 0</div>' in response.get_data(as_text=True)
    form["options"] = "slots: 2"
    form["csrf_token"] = csrf_token(admin_client, "/queues/new")
    assert admin_client.post("/queues/new", data=form).status_code == 302
    with app.app_context():
        assert db.session.scalars(select(Queue).where(Queue.name == "q9")).one().options == {"slots": 2}

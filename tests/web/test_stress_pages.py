"""The stress section through the template form, the live progress on the test page,
and the comparison page's field errors (local backend: the Slurm runs are in
tests/backends/test_slurm_stress.py)."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import MetricBand, Template
from tests.conftest import csrf_token
from tests.factories import make_queue, make_template, make_test, run_ticks

FORM = {
    "name": "stressed", "description": "", "queues": "q1", "lifetime": "600", "jobs_in_flight": "1",
    "max_jobs": "0", "max_running": "0", "script": 'echo "hc-ok"', "image": "", "command": "", "cores": "1",
    "memory_mb": "0", "walltime": "60", "gpus": "0", "exit_code": "0", "must_match": "", "must_not_match": "",
    "metrics": "",
}


def test_stress_section_from_the_form(admin_client: FlaskClient, app: Flask) -> None:
    stress = "ramp: [{at: 0, in_flight: 3}]\nmax_jobs: 4\n"
    form = dict(FORM, stress=stress, csrf_token=csrf_token(admin_client, "/templates/new"))
    assert admin_client.post("/templates/new", data=form).status_code == 302
    with app.app_context():
        template = db.session.scalars(select(Template).where(Template.name == "stressed")).one()
        assert template.kind == "stress" and template.stress == {
            "ramp": [{"at": 0, "in_flight": 3}], "max_jobs": 4, "abort_fail_rate": None}
        edit = admin_client.get(f"/templates/{template.id}/edit").get_data(as_text=True)
        assert "max_jobs: 4" in edit
    bad = dict(FORM, name="s2", stress="max_jobs: 4\n", csrf_token=csrf_token(admin_client, "/templates/new"))
    response = admin_client.post("/templates/new", data=bad)
    assert response.status_code == 400 and "list of 1 to 100 steps" in response.get_data(as_text=True)


def test_live_progress_and_report_of_a_local_stress_test(client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        template = make_template("s", script='echo "hc-ok value=3"', kind="stress",
                                 stress={"ramp": [{"at": 0, "in_flight": 2}], "max_jobs": 2})
        test = make_test(template, app)
        run_ticks(app, lambda: client.get(f"/api/v1/tests/{test.id}").get_json()["stress"]["judged"] == 2)
        page = client.get(f"/tests/{test.id}").get_data(as_text=True)
        assert "Stress progress" in page and "2 of 2 jobs judged" in page
        report = client.get(f"/tests/{test.id}/report").get_data(as_text=True)
        assert 'id="report-throughput"' in report and "value" in report
        download = client.get(f"/tests/{test.id}/report.html")
        assert download.headers["Content-Disposition"].startswith("attachment")
        assert "<script src" not in download.get_data(as_text=True)
        core_tick(app)  # the bands' pass: a stress test's metrics never feed the robot
        assert db.session.scalars(select(MetricBand)).all() == []


def test_compare_page_names_the_bad_field(client: FlaskClient) -> None:
    response = client.get("/compare?tests=1,x&metric=run_time")
    assert response.status_code == 400
    assert "tests: must be test ids" in response.get_data(as_text=True)
    assert client.get("/compare").status_code == 200

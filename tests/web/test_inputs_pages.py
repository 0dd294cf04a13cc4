"""The inputs section through the template form: saved, shown again for editing, errors by the field."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import Template
from tests.conftest import csrf_token

FORM = {
    "name": "reads", "description": "", "queues": "q1", "lifetime": "600", "jobs_in_flight": "1",
    "max_jobs": "0", "max_running": "0", "script": 'echo "hc-ok"', "image": "", "command": "", "cores": "1",
    "memory_mb": "0", "walltime": "60", "gpus": "0", "exit_code": "0", "must_match": "", "must_not_match": "",
    "metrics": "", "stress": "",
}


def test_inputs_from_the_form(admin_client: FlaskClient, app: Flask) -> None:
    inputs = "dataset: 'mc23:hc_test_input'\nfiles_per_job: 2\naccess: direct\n"
    form = dict(FORM, inputs=inputs, csrf_token=csrf_token(admin_client, "/templates/new"))
    assert admin_client.post("/templates/new", data=form).status_code == 302
    with app.app_context():
        template = db.session.scalars(select(Template).where(Template.name == "reads")).one()
        assert template.inputs == {"dataset": "mc23:hc_test_input", "access": "direct", "files_per_job": 2,
                                   "protocols": ["root", "davs", "file"]}
        edit = admin_client.get(f"/templates/{template.id}/edit").get_data(as_text=True)
        assert "dataset: mc23:hc_test_input" in edit
        # saving the form again keeps the inputs
        again = dict(FORM, inputs="dataset: mc23:hc_test_input\n",
                     csrf_token=csrf_token(admin_client, "/templates/new"))
        assert admin_client.post(f"/templates/{template.id}/edit", data=again).status_code == 302
    bad = dict(FORM, name="r2", inputs="files_per_job: 0\n", csrf_token=csrf_token(admin_client, "/templates/new"))
    response = admin_client.post("/templates/new", data=bad)
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "exactly one of the two" in text


def test_outputs_from_the_form(admin_client: FlaskClient, app: Flask) -> None:
    form = dict(FORM, outputs="rse: SITE-A_SCRATCHDISK\nlifetime: 7200\n",
                csrf_token=csrf_token(admin_client, "/templates/new"))
    assert admin_client.post("/templates/new", data=form).status_code == 302
    with app.app_context():
        template = db.session.scalars(select(Template).where(Template.name == "reads")).one()
        assert template.outputs == {"rse": "SITE-A_SCRATCHDISK", "lifetime": 7200}
        edit = admin_client.get(f"/templates/{template.id}/edit").get_data(as_text=True)
        assert "rse: SITE-A_SCRATCHDISK" in edit
    bad = dict(FORM, name="w2", outputs="rse: SITE-A_SCRATCHDISK\nlifetime: 5\n",
               csrf_token=csrf_token(admin_client, "/templates/new"))
    response = admin_client.post("/templates/new", data=bad)
    assert response.status_code == 400 and "must be whole seconds from 60 to" in response.get_data(as_text=True)

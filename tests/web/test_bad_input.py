"""Every bad input issue 11 measured gets a 4xx naming the field (or one CLI line), never a 500."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from tests.conftest import csrf_token
from tests.factories import make_queue, template_doc

HUGE = "99999999999999999999999"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _error(response: object) -> dict[str, object]:
    return response.get_json()["error"]  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("url", [
    f"/api/v1/jobs/{HUGE}", f"/api/v1/tests/{HUGE}", "/api/v1/queues/3³", "/api/v1/templates/²9",
    f"/api/v1/templates/{HUGE}", f"/tests/{HUGE}", f"/jobs/{HUGE}", f"/templates/{HUGE}",
])
def test_ids_outside_64_bits_and_unicode_digits_are_not_found(client: FlaskClient, url: str) -> None:
    assert client.get(url).status_code == 404


def test_huge_band_id_is_not_found(client: FlaskClient, api_token: str) -> None:
    response = client.post(f"/api/v1/robot/bands/{HUGE}/baseline", json={}, headers=auth(api_token))
    assert response.status_code == 404


@pytest.mark.parametrize(("url", "field"), [
    ("/tests?state=bogus", "state"), ("/tests?page=0", "page"), ("/tests?page=x", "page"),
    ("/overview?from=2026-01-01&to=9999-12-31", "to"),
    ("/robot?since=99999999999", "since"), ("/robot?day=2026-02-30", "day"), ("/overview?days=0", "days"),
    ("/api/v1/robot/events?limit=null", "limit"), ("/api/v1/jobs?page=0", "page"),
    ("/api/v1/jobs?per_page=0", "per_page"), ("/api/v1/robot/events?since=99999999999", "since"),
    ("/api/v1/templates?active=maybe", "active"),
])
def test_page_and_api_query_parameters_are_checked(client: FlaskClient, url: str, field: str) -> None:
    response = client.get(url)
    assert response.status_code == 400, url
    body = response.get_data(as_text=True)
    assert f"{field}:" in body if not url.startswith("/api/") else _error(response)["field"] == field


@pytest.mark.parametrize(("body", "field"), [
    ({"lifetime": int(HUGE)}, "lifetime"),
    ({"jobs_in_flight": 100000000}, "jobs_in_flight"),
    ({"jobs_in_flight": 1001}, "jobs_in_flight"),
    ({"autoexclusion": "maybe"}, "autoexclusion"),
    ({"name": "<script>"}, "name"),
    ({"colour": "red"}, "colour"),
])
def test_template_api_limits_and_types(client: FlaskClient, api_token: str, body: dict[str, object],
                                       field: str) -> None:
    response = client.post("/api/v1/templates", json={**template_doc(), **body}, headers=auth(api_token))
    assert response.status_code == 400
    error = _error(response)
    assert error["field"] == field
    if field == "name":
        assert "required" not in str(error["reason"]) and "'<script>' is not a valid name" in str(error["reason"])


def test_walltime_limit_and_script_with_image(client: FlaskClient, api_token: str) -> None:
    doc = template_doc()
    doc["workload"] = {"script": "echo x", "image": "img.sif", "command": "run",
                       "resources": {"walltime": 99999999999999}}
    errors = _error(client.post("/api/v1/templates", json=doc, headers=auth(api_token)))["errors"]
    fields = {e["field"] for e in errors}  # type: ignore[union-attr]
    assert fields == {"workload.image", "workload.resources.walltime"}, errors


def test_limits_are_configurable(tmp_path: Path) -> None:
    from tests.conftest import make_app

    app = make_app(tmp_path / "instance", LIMITS={"jobs_in_flight": 5})
    with app.app_context():
        from hcflask.models import ValidationError, validate_template

        with pytest.raises(ValidationError, match=r"jobs_in_flight: must be at most 5 \(limits.jobs_in_flight\)"):
            validate_template({**template_doc(), "jobs_in_flight": 6})


@pytest.mark.parametrize(("body", "field"), [
    ({"colour": "blue"}, "colour"),
    ({"autoexclusion": "maybe"}, "autoexclusion"),
    ({"options": {"slots": 2.5}}, "options.slots"),
    ({"options": {"slots": True}}, "options.slots"),
    ({"options": {"slots": 10**23}}, "options.slots"),
    ({"name": "<script>"}, "name"),
    ({"backend": "slurm", "options": {"partition": "de'bug"}}, "options.partition"),
    ({"backend": "slurm", "options": {"partition": "debug", "extra_args": ["-Jother"]}}, "options.extra_args"),
    ({"backend": "slurm", "options": {"partition": "debug", "extra_args": ["-o/path"]}}, "options.extra_args"),
])
def test_queue_api_is_strict(client: FlaskClient, api_token: str, body: dict[str, object], field: str) -> None:
    response = client.post("/api/v1/queues", json={"name": "q", "backend": "local", **body}, headers=auth(api_token))
    assert response.status_code == 400, response.get_json()
    error = _error(response)
    assert error["field"] == field
    if field == "options.partition":
        assert "not a valid Slurm name" in str(error["reason"])


def test_unreachable_slurm_is_not_blamed_on_extra_args(app: Flask, tmp_path: Path) -> None:
    """The real sbatch that cannot use its configuration (so never reaches a controller): the error
    names the backend, not extra_args, and says what sbatch said."""
    from hcflask.engine.actions import create_queue
    from hcflask.models import ValidationError

    conf = tmp_path / "slurm.conf"
    conf.write_text("ThisIsNotAKey=1\n")
    app.config["BACKENDS"]["slurm"] = {"slurm_conf": str(conf), "command_timeout": 20}
    with app.app_context(), pytest.raises(ValidationError) as info:
        create_queue("s1", "slurm", {"partition": "debug"})
    assert info.value.field == "backend", str(info.value)
    assert "sbatch refused it" not in info.value.reason and info.value.status == 409
    assert "configuration file" in info.value.reason


def test_tests_post_rejects_unknown_fields(client: FlaskClient, api_token: str, app: Flask) -> None:
    client.post("/api/v1/templates", json=template_doc(), headers=auth(api_token))
    response = client.post("/api/v1/tests", json={"template": "t1", "colour": "red"}, headers=auth(api_token))
    assert response.status_code == 400 and _error(response)["field"] == "colour"
    cancel = client.post("/api/v1/tests/1/cancel", json={"why": "x"}, headers=auth(api_token))
    assert cancel.status_code == 400


def test_options_and_405_are_truthful(client: FlaskClient) -> None:
    allowed = client.options("/api/v1/queues").headers["Allow"]
    assert set(allowed.replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert "PUT" not in client.options("/api/v1/jobs").headers["Allow"]
    response = client.put("/api/v1/queues", json={})
    assert response.status_code == 405 and response.get_json()["error"]["status"] == 405
    assert client.get("/api/v1/nothing-here").get_json()["error"]["status"] == 404


def test_template_form_reports_every_problem_at_once(admin_client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        make_queue("local")
    form = {"csrf_token": csrf_token(admin_client, "/templates/new"), "name": "<script>", "queues": "local",
            "lifetime": HUGE, "jobs_in_flight": "5000", "max_jobs": "0", "max_running": "0",
            "script": "echo x", "image": "img.sif", "command": "", "cores": "1", "memory_mb": "0",
            "walltime": "600", "gpus": "0", "exit_code": "0", "must_match": "(", "must_not_match": "", "metrics": ""}
    response = admin_client.post("/templates/new", data=form)
    assert response.status_code == 400
    errors = re.findall(r'<div class="err">([^<]*)</div>', response.get_data(as_text=True))
    assert len(errors) >= 5, errors
    text = " ".join(errors)
    for words in ("not a valid name", "at most 1000", "not both", "invalid regular expression"):
        assert words in text, (words, errors)


def test_cli_bad_files_are_one_line(runner: FlaskCliRunner, tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    huge = tmp_path / "huge.yaml"
    huge.write_text(f"name: h\nqueues: [local]\nlifetime: {HUGE}\nworkload: {{script: 'true'}}\n")
    good = tmp_path / "good.yaml"
    good.write_text("name: g\nqueues: [local]\nworkload: {script: 'true'}\n")
    assert runner.invoke(args=["template", "add", str(good)]).exit_code == 0
    for args, words in ((["template", "add", str(latin)], "not UTF-8"),
                        (["template", "add", str(huge)], "lifetime: must be at most"),
                        (["template", "export", "g", "-o", str(tmp_path / "missing" / "x.yaml")], "output:")):
        result = runner.invoke(args=args)
        assert result.exit_code != 0, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output

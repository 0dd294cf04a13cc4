"""One mistake, one message: the CLI, the API and the web form give the same words for it,
from :mod:`hcflask.models.messages`, and the form shows one error per field (issue 25)."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from hcflask.models import messages
from tests.conftest import csrf_token
from tests.factories import make_queue

TEMPLATE_FORM = {"name": "t1", "queues": "local", "lifetime": "3600", "jobs_in_flight": "1", "max_jobs": "0",
                 "max_running": "0", "script": "echo hc-ok", "image": "", "command": "", "cores": "1",
                 "memory_mb": "0", "walltime": "600", "gpus": "0", "exit_code": "0", "must_match": "",
                 "must_not_match": "", "metrics": "", "stress": "", "inputs": "", "outputs": ""}

#: (id, CLI arguments (FILE: the template file), API path and body, form path and fields,
#:  the form field the error stands beside, the dotted field, the reason)
CASES: list[tuple[str, list[str], str, dict[str, Any], str, dict[str, str], str, str, str]] = [
    ("slots-negative", ["queue", "add", "q2", "--backend", "local", "-o", "slots=-1"],
     "/api/v1/queues", {"name": "q2", "backend": "local", "options": {"slots": -1}},
     "/queues/new", {"name": "q2", "backend": "local", "options": "slots: -1"},
     "options", "options.slots", messages.at_least(1, -1)),
    ("slots-not-a-number", ["queue", "add", "q2", "--backend", "local", "-o", "slots=abc"],
     "/api/v1/queues", {"name": "q2", "backend": "local", "options": {"slots": "abc"}},
     "/queues/new", {"name": "q2", "backend": "local", "options": "slots: abc"},
     "options", "options.slots", messages.whole_number("abc")),
    ("options-not-pairs", ["queue", "add", "q2", "--backend", "local", "-o", "slots"],
     "/api/v1/queues", {"name": "q2", "backend": "local", "options": "slots"},
     "/queues/new", {"name": "q2", "backend": "local", "options": "slots"},
     "options", "options", messages.options_shape("slots")),
    ("jobs-in-flight-abc", ["template", "validate", "FILE"],
     "/api/v1/templates", {"name": "t1", "queues": ["local"], "jobs_in_flight": "abc",
                           "workload": {"script": "echo hc-ok"}},
     "/templates/new", {**TEMPLATE_FORM, "jobs_in_flight": "abc"},
     "jobs_in_flight", "jobs_in_flight", messages.whole_number("abc")),
    ("cores-zero", ["template", "validate", "FILE"],
     "/api/v1/templates", {"name": "t1", "queues": ["local"], "workload": {"script": "echo hc-ok",
                                                                         "resources": {"cores": 0}}},
     "/templates/new", {**TEMPLATE_FORM, "cores": "0"},
     "cores", "workload.resources.cores", messages.at_least(1, 0)),
]


def _errors(page: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<div class="err">([^<]*)</div>', page)]


@pytest.mark.parametrize(("cli", "api_path", "api_body", "form_path", "form", "form_field", "field", "reason"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_same_words_from_cli_api_and_form(
        app: Flask, runner: FlaskCliRunner, admin_client: FlaskClient, api_token: str, tmp_path: Path,
        cli: list[str], api_path: str, api_body: dict[str, Any], form_path: str, form: dict[str, str],
        form_field: str, field: str, reason: str) -> None:
    with app.app_context():
        make_queue("local")
    if "FILE" in cli:  # a template on the command line is a file: the API's body, as YAML
        import yaml

        path = tmp_path / "t.yaml"
        path.write_text(yaml.safe_dump(api_body))
        cli = [str(path) if arg == "FILE" else arg for arg in cli]
    said = runner.invoke(args=cli)
    assert said.exit_code == 1
    assert f"{field}: {reason}" in said.output, said.output

    answer = admin_client.post(api_path, json=api_body, headers={"Authorization": f"Bearer {api_token}"})
    error = answer.get_json()["error"]
    assert answer.status_code == 400 and (error["field"], error["reason"]) == (field, reason), error
    assert len(error["errors"]) == 1, error

    page = admin_client.post(form_path, data={"csrf_token": csrf_token(admin_client, form_path), **form})
    assert page.status_code == 400
    shown = _errors(page.get_data(as_text=True))
    # one error, beside its field, in the same words (a part of the field named, as options.slots)
    part = field if form_field == "options" and field != "options" else ""
    assert shown == [f"{part}: {reason}" if part else reason], shown
    assert re.search(rf'id="{form_field}"[^>]*class="invalid"|class="invalid"[^>]*id="{form_field}"',
                     page.get_data(as_text=True))


def test_options_field_shows_an_example(admin_client: FlaskClient) -> None:
    page = html.unescape(admin_client.get("/queues/new").get_data(as_text=True))
    assert messages.OPTIONS_EXAMPLE in page


def test_an_emptied_number_field_is_its_default(admin_client: FlaskClient, app: Flask) -> None:
    """As an absent key in a file: an emptied "Cores" means 1, not an error."""
    with app.app_context():
        make_queue("local")
    page = admin_client.post("/templates/new", data={"csrf_token": csrf_token(admin_client, "/templates/new"),
                                                     **TEMPLATE_FORM, "cores": ""})
    assert page.status_code == 302, _errors(page.get_data(as_text=True))


def test_what_was_given_is_echoed_short() -> None:
    """A long text, or a YAML document of nested aliases (cheap to parse, huge to print), is cut short."""
    nested: list[Any] = [1, 2, 3]
    for _ in range(40):
        nested = [nested] * 9
    assert len(messages.whole_number(nested)) < 200
    assert len(messages.options_shape("x" * 5000)) < 200
    assert messages.whole_number("abc") == "must be a whole number, got 'abc'"

"""``hc queue show``, ``hc test show``, ``hc template validate`` and the refusal of a test that
would match no queue (issue 25)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from hcflask.engine import actions
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import AuditEntry, RobotState, Template, Test
from tests.factories import make_queue, make_template, run_ticks

GOOD = "name: good\nqueues: [local, site-c]\nworkload: {script: 'echo hc-ok'}\n"
BAD = "name: bad one\nqueues: []\njobs_in_flight: abc\nworkload: {script: x, image: y}\n"


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def test_validate_reports_every_error_of_every_file_and_writes_nothing(
        app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    with app.app_context():
        make_queue("local")
        audited = db.session.scalar(select(func.count()).select_from(AuditEntry))
    result = runner.invoke(args=["template", "validate", _write(tmp_path, "good.yaml", GOOD),
                                 _write(tmp_path, "bad.yaml", BAD), _write(tmp_path, "worse.toml", "name = ")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    bad = [line for line in lines if line.startswith(str(tmp_path / "bad.yaml"))]
    assert [line.split(": ")[1] for line in bad] == ["name", "queues", "jobs_in_flight", "workload.image"], bad
    assert any("worse.toml: file:" in line and "not valid TOML" in line for line in lines)
    assert f"{tmp_path / 'good.yaml'}: ok (import creates template good)" in lines
    assert any("good.yaml: warning: queues: 'site-c' matches no queue" in line for line in lines)
    assert lines[-1] == "Error: 2 of 3 file(s) invalid; nothing was written"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Template)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == audited
    only_good = runner.invoke(args=["template", "validate", str(tmp_path / "good.yaml")])
    assert only_good.exit_code == 0, only_good.output


def test_import_warns_and_start_refuses_a_template_matching_no_queue(
        app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    with app.app_context():
        make_queue("local")
    path = _write(tmp_path, "t.yaml", "name: nowhere\nqueues: [site-c, 'site-d*']\nworkload: {script: 'true'}\n")
    imported = runner.invoke(args=["template", "import", path])
    assert imported.exit_code == 0
    assert "Warning: queues: 'site-c' matches no queue" in imported.output
    assert "Warning: queues: 'site-d*' matches no queue" in imported.output
    started = runner.invoke(args=["test", "start", "nowhere"])
    assert started.exit_code == 1
    assert started.output.strip().splitlines() == [
        "Error: queues: no queue matches site-c, site-d*: a test of nowhere would end in error "
        "(add a queue, or change the template's queues)"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Test)) == 0


def test_list_and_api_show_why_a_test_is_in_error(app: Flask, runner: FlaskCliRunner) -> None:
    """A queue deleted between the start and the core tick: the test ends in ``error``, and says why."""
    with app.app_context():
        queue = make_queue("gone")
        test_id = actions.start_test(make_template("t1", queues=["gone"]), actor="tests", refuse_unmatched=True).id
        actions.delete_queue(queue, "tests")
        core_tick(app)
    listed = runner.invoke(args=["test", "list"]).output.splitlines()
    assert listed[0].split()[-1] == "note"
    assert listed[1].split()[:2] == [str(test_id), "error"] and listed[1].endswith("no queue matches gone")
    api = app.test_client().get(f"/api/v1/tests/{test_id}").get_json()
    assert (api["state"], api["note"]) == ("error", "no queue matches gone")
    shown = runner.invoke(args=["test", "show", str(test_id)]).output
    assert "State:          error: no queue matches gone" in shown
    assert "Queues:         gone -> none" in shown


def test_queue_show_and_test_show_describe_them(app: Flask, runner: FlaskCliRunner) -> None:
    with app.app_context():
        make_queue("local", slots=2)
        test_id = actions.start_test(make_template("t1", queues=["local"]), actor="tests").id
        core_tick(app)
        run_ticks(app, lambda: db.session.get(Test, test_id).queue_names == ["local"]
                  and "succeeded" in {j.state for j in db.session.get(Test, test_id).jobs})
        actions.set_queue_status(db.session.scalar(select(Template)).tests.first().jobs[0].queue, "offline",
                                 "admin", "disk full")
        state = RobotState.get()
        state.last_summary = {"local": {"status": "offline", "verdict": "failing", "reason": "3 failures in a row",
                                        "templates": {"t1": "success"}}}
        db.session.commit()
    shown = runner.invoke(args=["queue", "show", "local"])
    assert shown.exit_code == 0, shown.output
    text = shown.output
    for words in ("Name:           local", "Backend:        local", "Status:         offline",
                  "Options:        slots=2",
                  "  admin    offline   by admin since", ": disk full", f"  {test_id:<6} t1 (running)",
                  "Robot:          failing (3 failures in a row); t1=success", "Recent jobs:", "succeeded",
                  "online -> offline by admin: disk full"):
        assert words in text, (words, text)
    facts = json.loads(runner.invoke(args=["queue", "show", "local", "--json"]).output)
    assert facts["status"] == "offline" and facts["claims"][0]["reason"] == "disk full"
    assert facts["active_tests"] == [{"id": test_id, "template": "t1", "state": "running"}]

    described = runner.invoke(args=["test", "show", str(test_id)])
    assert described.exit_code == 0, described.output
    for words in (f"Test:           {test_id}", "Template:       t1 (functional)", "State:          running",
                  "Queues:         local -> local", "Jobs:           ", "completed", "  local ",
                  "Robot:          local=success", "Recent jobs:"):
        assert words in described.output, (words, described.output)
    # times as everywhere (issue 25 item 6), never the API's ISO
    assert re.search(r"Planned end:    \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n", described.output), described.output
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d", described.output + text), described.output + text
    data = json.loads(runner.invoke(args=["test", "show", str(test_id), "--json"]).output)
    assert data["jobs"]["completed"] >= 1 and data["queues_jobs"]["local"]["completed"] >= 1
    assert runner.invoke(args=["queue", "show", "nope"]).output.strip() == "Error: queue: no such queue 'nope'"
    assert runner.invoke(args=["test", "show", "999"]).exit_code == 1

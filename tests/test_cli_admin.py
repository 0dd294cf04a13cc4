"""The admin's CLI: help without side effects, a taken port, bad filters, queue, template
and user management, and the online SQLite backup."""
from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import Job, Queue, Template, Test, utcnow
from hcflask.states import JobState
from tests.factories import make_queue, make_template

HC = [sys.executable, "-c", "from hcflask.cli import main; main()"]


def run_hc(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"HC_INSTANCE": str(tmp_path / "inst"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run([*HC, *args], env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("--version",), ("queue", "--help"), ("db", "--help"),
                                  ("serve", "--help"), ("test", "list", "--help")])
def test_help_and_version_have_no_side_effects(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run_hc(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "--help or --version wrote a file"


def test_help_shows_only_admin_commands(tmp_path: Path) -> None:
    top = run_hc(tmp_path, "--help").stdout
    for hidden in ("--env-file", "--app", "--debug"):
        assert hidden not in top, hidden
    commands = {line.split()[0] for line in top.split("Commands:")[1].splitlines() if line.startswith("  ")}
    assert commands == {"catalog", "commission", "db", "doctor", "init", "purge", "queue", "robot", "serve",
                        "template", "test", "token", "user"}
    database = run_hc(tmp_path, "db", "--help").stdout
    commands = {line.split()[0] for line in database.split("Commands:")[1].splitlines() if line.strip()}
    assert commands == {"backup", "current", "history", "rollup", "upgrade"}


def test_serve_on_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_hc(tmp_path, "serve", "--bind", f"127.0.0.1:{port}", HC_DEMO="false")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "--bind" in lines[0] and "HC_PORT" in lines[0]
    assert "serving" not in done.stdout


def test_bad_filter_values_are_errors(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["test", "list", "--state", "bogus"])
    assert result.exit_code == 2 and "'bogus' is not one of" in result.output
    assert runner.invoke(args=["queue", "list", "--status", "gone"]).exit_code == 2
    assert runner.invoke(args=["test", "list", "--state", "running"]).exit_code == 0


def test_queue_edit_and_remove(app: Flask, runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["queue", "add", "q1", "--backend", "local", "-o", "slots=2"]).exit_code == 0
    edited = runner.invoke(args=["queue", "edit", "q1", "-o", "slots=3", "--description", "new",
                                 "--no-autoexclusion"])
    assert edited.exit_code == 0, edited.output
    bad = runner.invoke(args=["queue", "edit", "q1", "-o", "slots=many"])
    assert bad.exit_code == 1 and "options.slots" in bad.output
    with app.app_context():
        queue = db.session.scalar(select(Queue).where(Queue.name == "q1"))
        assert (queue.options, queue.description, queue.autoexclusion) == ({"slots": 3}, "new", False)
    assert runner.invoke(args=["queue", "remove", "q1"], input="n\n").exit_code == 1
    removed = runner.invoke(args=["queue", "remove", "q1", "--yes"])
    assert removed.exit_code == 0 and "queue q1 deleted" in removed.output
    assert "q1" not in runner.invoke(args=["queue", "list"]).output
    assert "no such queue" in runner.invoke(args=["queue", "remove", "q1", "--yes"]).output


def test_queue_remove_refuses_jobs_in_flight_and_keeps_history(app: Flask, runner: FlaskCliRunner) -> None:
    with app.app_context():
        queue = make_queue("q1")
        test = Test.from_template(make_template("t1"), created_by="tests")
        db.session.add(test)
        db.session.flush()
        for state in (JobState.RUNNING, JobState.SUCCEEDED):
            db.session.add(Job(test_id=test.id, queue_id=queue.id, backend="local", name=f"j-{state.value}",
                               state=state.value, ended_at=utcnow() if state.final else None))
        db.session.commit()
        running = db.session.scalar(select(Job.id).where(Job.state == "running"))
        test_id = test.id
    refused = runner.invoke(args=["queue", "remove", "q1", "--yes"])
    assert refused.exit_code == 1
    assert f"1 job(s) in flight (jobs {running} of tests {test_id})" in refused.output
    with app.app_context():
        job = db.session.get(Job, running)
        job.state, job.ended_at = JobState.FAILED.value, utcnow()
        db.session.commit()
    removed = runner.invoke(args=["queue", "remove", "q1", "--yes"])
    assert removed.exit_code == 0 and "history stays under q1.deleted-" in removed.output
    with app.app_context():
        jobs = db.session.scalars(select(Job)).all()
        assert len(jobs) == 2 and {j.queue.name for j in jobs} == {f"q1.deleted-{jobs[0].queue_id}"}
        assert jobs[0].queue.status == "offline"
    assert runner.invoke(args=["queue", "add", "q1", "--backend", "local"]).exit_code == 0


def test_template_deactivate_import_reactivates_and_remove(app: Flask, runner: FlaskCliRunner,
                                                            tmp_path: Path) -> None:
    with app.app_context():
        make_queue("q1")  # a test of a template matching no queue is refused
        make_template("t1")
    assert "t1 is deactivated" in runner.invoke(args=["template", "deactivate", "t1"]).output
    assert "already was" in runner.invoke(args=["template", "deactivate", "t1"]).output
    exported = tmp_path / "t1.yaml"
    assert runner.invoke(args=["template", "export", "t1", "-o", str(exported)]).exit_code == 0
    again = runner.invoke(args=["template", "import", str(exported)])
    assert again.exit_code == 0 and "active again" in again.output
    with app.app_context():
        assert db.session.scalar(select(Template.active)) is True
    assert runner.invoke(args=["test", "start", "t1"]).exit_code == 0
    removed = runner.invoke(args=["template", "remove", "t1", "--yes"])
    assert removed.exit_code == 0 and "1 tests kept" in removed.output
    with app.app_context():
        test = db.session.scalar(select(Test))
        assert test.template_id is None and test.state == "cancelled" and test.template_name == "t1"
    assert "t1" not in runner.invoke(args=["template", "list"]).output


def test_user_list_and_remove(runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["user", "add", "ann", "--password", "long enough"]).exit_code == 0
    runner.invoke(args=["token", "create", "ann"])
    listed = runner.invoke(args=["user", "list"]).output
    assert "ann" in listed and "tokens" in listed.splitlines()[0]
    assert listed.splitlines()[1].split()[-1] == "1"
    assert runner.invoke(args=["user", "remove", "ann", "--yes"]).exit_code == 0
    assert "ann" not in runner.invoke(args=["user", "list"]).output
    assert "no such user" in runner.invoke(args=["user", "remove", "ann", "--yes"]).output


def test_db_backup_is_a_consistent_copy_while_a_writer_runs(tmp_path: Path) -> None:
    """A second process writes to the database all along; the copy passes SQLite's own check."""
    assert run_hc(tmp_path, "init").returncode == 0
    database = tmp_path / "inst" / "hc.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "con = sqlite3.connect(sys.argv[1], timeout=30)\n"
        "con.execute('CREATE TABLE IF NOT EXISTS churn (x TEXT)')\n"
        "while True:\n"
        "    con.execute('INSERT INTO churn VALUES (?)', ('x' * 4000,)); con.commit()\n"
    ), str(database)])
    try:
        while not sqlite3.connect(database).execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'churn'").fetchone()[0]:
            time.sleep(0.05)
        done = run_hc(tmp_path, "db", "backup", str(tmp_path / "copy.sqlite"))
    finally:
        writer.kill()
        writer.wait()
    assert done.returncode == 0, done.stderr
    copy = sqlite3.connect(tmp_path / "copy.sqlite")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT count(*) FROM template").fetchone()[0] >= 1
    again = run_hc(tmp_path, "db", "backup", str(tmp_path / "copy.sqlite"))
    assert again.returncode == 1 and "exists already" in again.stderr

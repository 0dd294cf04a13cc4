"""``hc doctor``: one line per check, exit 1 when something is wrong."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import update

from hcflask.engine import actions
from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.service import corelease, hosts
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import CoreLease, Host, Job, Test, utcnow
from tests.factories import make_queue, make_template


def _doctor(app: Flask) -> tuple[int, dict[str, str]]:
    result = app.test_cli_runner().invoke(args=["doctor"])
    lines = {}
    for line in result.output.splitlines():
        level, _, rest = line.partition(" ")
        name, _, _text = rest.strip().partition(": ")
        lines[name] = level
    return result.exit_code, lines


def test_doctor_says_what_is_wrong_and_exits_non_zero(app: Flask) -> None:
    code, lines = _doctor(app)
    assert code == 1 and lines["core lease"] == "FAIL" and lines["schema"] == "ok", lines
    with app.app_context():
        hosts.claim(core=True)
        assert corelease.CoreRole().acquire()
        make_queue("q1")
        test_id = actions.start_test(make_template(script="sleep 30"), actor="tests").id
        core_tick(app)
        submission_tick(app)
    code, lines = _doctor(app)
    assert code == 0, lines
    assert {lines[k] for k in ("schema", "core lease", "host testhost", "tick testhost/submission", "stuck jobs",
                               "outbox", "disk", "backend local")} == {"ok"}, lines
    with app.app_context():  # the host's clock 10 min ahead of the database's: shown, not an error
        db.session.execute(update(Host).values(clock_offset=600.0))
        db.session.commit()
    code, lines = _doctor(app)
    assert (code, lines["host testhost"]) == (0, "warn")
    with app.app_context():  # a job running far past its walltime
        db.session.execute(update(Job).where(Job.test_id == test_id).values(
            state="running", started_at=utcnow() - timedelta(days=1)))
        db.session.execute(update(Host).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.execute(update(CoreLease).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert db.session.get_one(Test, test_id).state == "running"
    code, lines = _doctor(app)
    assert code == 1 and lines["stuck jobs"] == "FAIL" and lines["host testhost"] == "FAIL", lines
    assert lines["core lease"] == "FAIL"
    assert "no core for" in result_text(app) and "testhost holds it, heartbeat" in result_text(app)


def result_text(app: Flask) -> str:
    return app.test_cli_runner().invoke(args=["doctor"]).output

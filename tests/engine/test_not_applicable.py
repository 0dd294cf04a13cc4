"""The third outcome: a job that says its probe does not apply is neither a success nor a failure."""
from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from hcflask.backends.base import Status
from hcflask.engine.data.rollups import job_rows
from hcflask.engine.jobs.judge import judge
from hcflask.engine.robot.robot import robot_pass
from hcflask.extensions import db
from hcflask.models import Job, Queue, RobotState
from hcflask.states import JobState
from hcflask.web.queries import counts_by_queue
from tests.factories import make_queue, make_template, make_test, run_ticks

OPTED_IN = {"resources": {"walltime": 60}, "success": {"exit_code": 0, "not_applicable_exit_code": 4}}
PLAIN = {"resources": {"walltime": 60}, "success": {"exit_code": 0}}


def _finished(exit_code: int, **result: object) -> tuple[Status, dict[str, object]]:
    return Status(JobState.SUCCEEDED, "done", exit_code=exit_code), {"exit_code": exit_code, **result}


def test_the_marker_line_gives_not_applicable_with_its_reason() -> None:
    status, result = _finished(0)
    verdict = judge(PLAIN, status, result, "start\nhc-not-applicable: no GPU on node7\n", "")
    assert verdict.state is JobState.NOT_APPLICABLE and verdict.reason == "no GPU on node7"


def test_exit_4_is_not_applicable_only_where_the_template_opts_in() -> None:
    status, result = _finished(4)
    assert judge(OPTED_IN, status, result, "", "").state is JobState.NOT_APPLICABLE
    status, result = _finished(4)
    plain = judge(PLAIN, status, result, "", "boom")
    assert plain.state is JobState.FAILED and plain.reason == "exit 4: boom"


def test_a_batch_systems_plain_exit_verdict_still_lets_the_probe_say_not_applicable() -> None:
    """Slurm reports a non-zero exit as FAILED with reason "exit 4": the payload's own code."""
    status = Status(JobState.FAILED, "FAILED", reason="exit 4", exit_code=4)
    verdict = judge(OPTED_IN, status, {"exit_code": 4}, "hc-not-applicable: no GPU\n", "")
    assert verdict.state is JobState.NOT_APPLICABLE and verdict.reason == "no GPU"
    status = Status(JobState.FAILED, "OUT_OF_MEMORY", reason="out of memory", exit_code=4)
    assert judge(OPTED_IN, status, {"exit_code": 4}, "hc-not-applicable: no GPU\n", "").state is JobState.FAILED


def test_a_timeout_is_never_hidden_by_the_marker() -> None:
    status, result = _finished(124, timeout=True)
    verdict = judge(OPTED_IN, status, result, "hc-not-applicable: whatever\n", "")
    assert verdict.state is JobState.FAILED and verdict.reason.startswith("timeout")


def test_the_marker_needs_its_own_line() -> None:
    status, result = _finished(0)
    verdict = judge(PLAIN, status, result, "echo says: hc-not-applicable: no\n", "")
    assert verdict.state is JobState.SUCCEEDED


def test_only_not_applicable_results_never_move_the_robot(app: Flask) -> None:
    """Three not-applicable jobs on an auto-excluding test: the queue stays online, not judged;
    the test counts show them apart and not as failures."""
    script = 'echo "hc-not-applicable: no /cvmfs on $(hostname)"; exit 4'
    with app.app_context():
        make_queue("na1")
        template = make_template("na", ["na1"], script=script, autoexclusion=True,
                                 workload={"success": {"exit_code": 0, "not_applicable_exit_code": 4}})
        test = make_test(template, app)

        def done() -> bool:
            return (db.session.scalar(select(func.count()).select_from(Job).where(
                Job.state == JobState.NOT_APPLICABLE.value)) or 0) >= 3
        run_ticks(app, done, timeout=60)
        counts = robot_pass()
        assert counts.get("excluded", 0) == 0
        db.session.expire_all()
        assert db.session.scalar(select(Queue.status).where(Queue.name == "na1")) == "online"
        row = RobotState.get().last_summary["na1"]
        assert row["verdict"] == "not_judged", row
        assert "not-applicable" in row["reason"]
        per_queue = counts_by_queue(test.id)[db.session.scalar(select(Queue.id).where(Queue.name == "na1"))]
        assert per_queue.not_applicable >= 3 and per_queue.failed == 0 and per_queue.fail_percent is None
        job = db.session.scalar(select(Job).where(Job.state == JobState.NOT_APPLICABLE.value))
        assert job.failure_reason.startswith("no /cvmfs on ")
        # the jobs list's total (from the rollups, without counting rows) includes them
        assert job_rows(db.session()) == db.session.scalar(select(func.count()).select_from(Job))

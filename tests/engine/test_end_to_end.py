"""The whole loop with the real scheduler on the local backend: a short test
on two queues, one of which fails, watched through the home page and the API."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcflask.engine.service import scheduler
from hcflask.extensions import db
from hcflask.models import Job, Test
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template, make_test

SCRIPT = """
echo "job $HC_JOB_ID of test $HC_TEST_ID on $HC_QUEUE, template $HC_TEMPLATE"
if [ "$HC_QUEUE" = broken ]; then echo "cannot mount /cvmfs" >&2; exit 2; fi
echo "hc-ok value=$HC_JOB_ID"
"""


def test_short_test_on_two_queues(tmp_path: Path) -> None:
    app = make_app(tmp_path / "instance", SCHEDULER_CORE_SECONDS=1.0, SCHEDULER_SUBMISSION_SECONDS=1.0,
                   SCHEDULER_MONITOR_SECONDS=1.0)
    with app.app_context():
        make_queue("good")
        make_queue("broken")
        make_template("e2e", queues=["good", "broken"], script=SCRIPT, lifetime=8, jobs_in_flight=2)
        from hcflask.engine.actions import start_test
        from hcflask.models import Template

        test_id = start_test(db.session.scalars(select(Template)).one(), actor="tests").id
    try:
        assert scheduler.start(app)
        assert not scheduler.start(make_app(tmp_path / "instance")), "a second scheduler got the lock"
        deadline = time.monotonic() + 40
        with app.app_context():
            while time.monotonic() < deadline:
                db.session.expire_all()
                test = db.session.get(Test, test_id)
                in_flight = db.session.scalars(select(Job).where(Job.state.in_(
                    ["pending", "submitted", "queued", "running"]))).all()
                if test.state == "completed" and not in_flight:
                    break
                time.sleep(0.5)
            assert test.state == "completed", test.state
    finally:
        scheduler.stop(app)
        kill_local_jobs(tmp_path / "instance")

    with app.app_context():
        every = db.session.scalars(select(Job)).all()
        # the core ends the test on its own thread: jobs not yet started then are cancelled
        unsent = [j for j in every if j.state == "cancelled"]
        assert {j.failure_reason for j in unsent} <= {"test ended before the job was submitted", "cancelled"}
        jobs = [j for j in every if j.state != "cancelled"]
        good = [j for j in jobs if j.queue.name == "good"]
        broken = [j for j in jobs if j.queue.name == "broken"]
        assert len(good) >= 2 and len(broken) >= 2
        assert {j.state for j in good} == {"succeeded"}
        assert {j.state for j in broken} == {"failed"}
        assert {j.failure_reason for j in broken} == {"exit 2: cannot mount /cvmfs"}
        assert all(j.metrics[0].value == j.id for j in good)
        completed, failed = len(good), len(broken)

    client = app.test_client()
    api = client.get(f"/api/v1/tests/{test_id}").get_json()
    assert api["state"] == "completed"
    assert api["jobs"]["completed"] == completed
    assert api["jobs"]["failed"] == failed
    assert api["queues_jobs"]["broken"]["fail_percent"] == 100.0
    listed = client.get("/api/v1/jobs?state=failed&queue=broken").get_json()
    assert listed["total"] == failed
    page = client.get(f"/tests/{test_id}").get_data(as_text=True)
    assert "exit 2: cannot mount /cvmfs" in page
    health = client.get("/healthz").get_json()
    assert set(health["ticks"]) >= {"core", "submission", "monitor", "actions", "reconcile"}
    assert health["scheduler_in_this_process"] is False  # stopped above


def _scheduled(tmp_path: Path, wanted: int, template: dict[str, Any], judged: bool = True,
               **intervals: Any) -> list[Job]:
    """Run a test of ``template`` on queue q1 under the real scheduler with ``intervals`` until
    ``wanted`` of its jobs exist (``judged``: are judged), at most 40 s; those jobs."""
    app = make_app(tmp_path / "instance", SCHEDULER_CORE_SECONDS=0.5, **intervals)
    with app.app_context():
        make_queue("q1", slots=20)
        make_test(make_template(queues=["q1"], **template), app)  # running before the first submission tick
    query = select(Job).where(Job.judged_at.is_not(None)) if judged else select(Job)
    try:
        assert scheduler.start(app)
        deadline = time.monotonic() + 40
        with app.app_context():
            while time.monotonic() < deadline:
                db.session.expire_all()
                found = db.session.scalars(query).all()
                if len(found) >= wanted:
                    break
                time.sleep(0.2)
            assert len(found) == wanted, [(j.id, j.state) for j in db.session.scalars(select(Job))]
            return list(found)
    finally:
        scheduler.stop(app)
        kill_local_jobs(tmp_path / "instance")


def test_local_jobs_that_end_bring_the_monitor_tick_forward(tmp_path: Path) -> None:
    """Monitor every hour, submission every 0.5 s: after the monitor's first run (at start, before
    any job exists) every job is judged only because the local backend heard its wrapper end and
    brought the monitor tick forward."""
    judged = _scheduled(tmp_path, 6, {"name": "heard", "script": 'echo "hc-ok value=1"', "jobs_in_flight": 2,
                                      "max_jobs": 6},
                        SCHEDULER_SUBMISSION_SECONDS=0.5, SCHEDULER_MONITOR_SECONDS=3600.0)
    assert {j.state for j in judged} == {"succeeded"}


def test_a_submission_tick_at_its_cap_runs_again_at_once(tmp_path: Path) -> None:
    """15 jobs wanted, 5 per tick, submission and monitor every hour: the ticks at start write 5
    (and a monitor that saw them start may bring one more tick, 10); all 15 exist only because a
    tick that reached its cap ran again at once.  The jobs sleep, so no ended job brings ticks."""
    _scheduled(tmp_path, 15, {"name": "capped", "script": "sleep 30", "jobs_in_flight": 15, "max_jobs": 15},
               judged=False, SCHEDULER_SUBMISSION_SECONDS=3600.0, SCHEDULER_MONITOR_SECONDS=3600.0,
               SCHEDULER_JOBS_PER_TICK=5)


def test_judged_jobs_are_replaced_without_waiting_for_the_submission_interval(tmp_path: Path) -> None:
    """Submission every hour, monitor every 0.5 s: the first submission tick (at start) writes
    the test's 2 jobs; every further job exists only because a monitor tick that judged jobs
    brought the submission tick forward."""
    _scheduled(tmp_path, 8, {"name": "wake", "script": 'echo "hc-ok value=1"', "jobs_in_flight": 2, "max_jobs": 8},
               SCHEDULER_SUBMISSION_SECONDS=3600.0, SCHEDULER_MONITOR_SECONDS=0.5)

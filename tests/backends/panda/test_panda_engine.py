"""The engine's real ticks driving ``panda`` queues on the real PanDA server.

Submission, monitoring, a SIGKILL of hcflask in the middle of submitting
(no job submitted twice: checked in PanDA's own database), and the robot
excluding the PanDA queue whose payload fails.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.backends.panda import MARKER
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.reconcile import reconcile
from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.robot.robot import robot_pass
from hcflask.extensions import db
from hcflask.models import Job, Queue, QueueEvent
from tests.factories import make_queue, make_template, make_test, run_ticks

pytestmark = pytest.mark.panda

#: stdout stays with the pilot: a panda template judges the exit code only
WORKLOAD = {"success": {"exit_code": 0}, "metrics": {}}
SCRIPT = 'if [ "$HC_QUEUE" = pq-bad ]; then echo "scratch disk full on $HC_QUEUE" >&2; exit 3; fi\necho ok'


def count(state: str, queue: str | None = None) -> int:
    query = select(func.count()).select_from(Job).where(Job.state == state)
    if queue:
        query = query.join(Queue).where(Queue.name == queue)
    return db.session.scalar(query) or 0


JOB_NAMES_SQL = """
SELECT jobname, count(*) FROM (
  SELECT jobname FROM panda.jobsdefined4 UNION ALL SELECT jobname FROM panda.jobsactive4
  UNION ALL SELECT jobname FROM panda.jobswaiting4 UNION ALL SELECT jobname FROM panda.jobsarchived4
) j GROUP BY jobname;
"""


def panda_job_names(panda) -> dict[str, int]:  # noqa: ANN001 - the fixture's server
    """Job name -> how many PanDA jobs carry it, from the server's own tables."""
    rows = panda.psql(JOB_NAMES_SQL)
    return {name: int(n) for name, n in (line.split("|") for line in rows.splitlines() if line)}


def test_ticks_submit_monitor_and_judge(app: Flask, panda) -> None:  # noqa: ANN001
    with app.app_context():
        make_queue("pq-good", "panda", **panda.queue_options("HC_TEST_QUEUE"))
        make_queue("pq-bad", "panda", **panda.queue_options("HC_TEST_QUEUE_2"))
        make_test(make_template("pt", ["pq-good", "pq-bad"], script=SCRIPT, jobs_in_flight=2, max_jobs=2,
                                workload=WORKLOAD), app)
        run_ticks(app, lambda: count("succeeded") + count("failed") >= 4, timeout=90, pause=1)
        good = db.session.scalars(select(Job).join(Queue).where(Queue.name == "pq-good")).all()
        assert [j.state for j in good] == ["succeeded", "succeeded"]
        for job in good:
            assert job.backend_id.isdigit() and job.native_state == "finished"
            assert job.exit_code == 0 and job.host and job.started_at and job.ended_at
            assert "cpu_time" in {m.name for m in job.metrics}
        bad = db.session.scalars(select(Job).join(Queue).where(Queue.name == "pq-bad")).all()
        assert [j.state for j in bad] == ["failed", "failed"]
        for job in bad:
            assert job.exit_code == 3 and job.native_state == "failed"
            assert "pilot error 1305" in job.failure_reason
            assert "scratch disk full on pq-bad" in job.failure_reason


def test_robot_excludes_the_failing_panda_queue(app: Flask, panda) -> None:  # noqa: ANN001
    with app.app_context():
        make_queue("pq-good", "panda", **panda.queue_options("HC_TEST_QUEUE"))
        make_queue("pq-bad", "panda", **panda.queue_options("HC_TEST_QUEUE_2"))
        make_test(make_template("pt", ["pq-good", "pq-bad"], script=SCRIPT, jobs_in_flight=3, max_jobs=3,
                                autoexclusion=True, workload=WORKLOAD), app)
        run_ticks(app, lambda: count("failed", "pq-bad") >= 3 and count("succeeded", "pq-good") >= 2,
                  timeout=90, pause=1)
        assert robot_pass()["excluded"] == 1
        db.session.expire_all()
        status = dict(db.session.execute(select(Queue.name, Queue.status)).all())
        assert status == {"pq-good": "online", "pq-bad": "excluded"}
        event = db.session.scalar(select(QueueEvent).where(QueueEvent.new_status == "excluded"))
        assert event.actor == "robot" and len(event.job_ids) == 3


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tests.conftest import make_app
    from hcflask.engine.jobs.submission import submission_tick
    app = make_app(Path(sys.argv[1]), INSTANCE_NAME=sys.argv[2])
    while True:
        submission_tick(app)
""")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_kill_9_during_submission_never_submits_twice(app: Flask, panda, delay: float) -> None:  # noqa: ANN001
    with app.app_context():
        make_queue("pq-good", "panda", **panda.queue_options("HC_TEST_QUEUE"))
        make_test(make_template("pt", ["pq-good"], script="true", jobs_in_flight=30, max_jobs=30,
                                workload=WORKLOAD), app)
    child = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", CHILD, app.instance_path, app.config["INSTANCE_NAME"]],
        cwd=Path(__file__).resolve().parents[3],
    )
    jobs_root = Path(app.config["JOBS_ROOT"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill while submitJobs is on the wire
        if any('"submitting"' in p.read_text() for p in jobs_root.glob(f"*/*/{MARKER}")):
            break
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    with app.app_context():
        before = {j.name: j.backend_id for j in db.session.scalars(select(Job))}
        assert before, "the child wrote no job"
        counts = reconcile(app)
        db.session.expire_all()
        jobs = db.session.scalars(select(Job)).all()
        in_panda = panda_job_names(panda)
        for job in jobs:
            assert in_panda.get(job.name, 0) <= 1, f"{job.name} is in PanDA {in_panda[job.name]} times"
            if job.state == "lost":
                assert job.name not in in_panda, f"{job.name} runs in PanDA but is marked lost"
            else:
                assert in_panda.get(job.name) == 1 and job.backend_id, f"{job.name} not tracked"
        assert counts["adopted"] + counts["lost"] == sum(1 for v in before.values() if v is None)
        # the service goes on, and sends nothing again
        for _ in range(3):
            submission_tick(app)
            monitor_tick(app)
        assert max(panda_job_names(panda).values(), default=1) == 1
        assert db.session.scalar(select(func.count()).select_from(Job)) == len(before)

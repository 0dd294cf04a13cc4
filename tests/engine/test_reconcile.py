"""Crash between writing a job row and submitting it: a real process is
killed (SIGKILL) and the restart reconciles against the real local backend,
which proves a job absent (no marker in its work dir): such a job is
submitted after the restart, never lost and never doubled."""
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
from sqlalchemy import select

from hcflask.backends.local import MARKER
from hcflask.engine.jobs.reconcile import reconcile
from hcflask.extensions import db
from hcflask.models import Job
from tests.factories import make_queue, make_template, make_test, run_ticks

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from tests.conftest import make_app
    from hcflask.backends.local import LocalBackend
    from hcflask.engine.jobs.submission import create_jobs, submit_pending, submission_tick
    app = make_app(Path(sys.argv[1]), INSTANCE_NAME=sys.argv[2])
    mode = sys.argv[3]
    if mode == "loop":
        while True:
            submission_tick(app)
    # the tick claims and hands over its jobs in one batch: die at the 3rd job of it, before the
    # backend took that job ("before") or after it accepted it ("after")
    calls = []
    real = LocalBackend.submit
    def dying(self, spec):
        calls.append(1)
        if len(calls) == 3:
            if mode == "after":
                real(self, spec)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, spec)
    LocalBackend.submit = dying
    with app.app_context():
        create_jobs()
        submit_pending()
""")


def _child(app: Flask, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, app.instance_path, app.config["INSTANCE_NAME"], mode],
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.parametrize(("moment", "third"), [("before", "pending"), ("after", "submitted")])
def test_killed_while_submitting(app: Flask, moment: str, third: str) -> None:
    """Killed -9 in the backend call, at the 3rd job of the batch: before the batch system got it,
    or after.  The whole batch was claimed, none of its ids recorded: reconcile adopts what the
    backend has and submits the rest, each once."""
    with app.app_context():
        make_queue("q1")
        make_test(make_template(jobs_in_flight=5, script='sleep 1; echo "hc-ok value=1"'), app)
    child = _child(app, moment)
    assert child.wait(timeout=60) == -signal.SIGKILL
    with app.app_context():
        jobs = db.session.scalars(select(Job).order_by(Job.id)).all()
        assert [j.backend_id for j in jobs] == [None] * 5
        assert [j.submit_attempts for j in jobs] == [1] * 5
        taken = 2 + (third == "submitted")  # jobs the backend got before the kill
        expected = {"adopted": taken, "resubmitted": 5 - taken, "lost": 0, "undecided": 0}
        assert reconcile(app) == expected
        db.session.expire_all()
        jobs = db.session.scalars(select(Job).order_by(Job.id)).all()
        assert [j.state for j in jobs] == ["submitted", "submitted", third, "pending", "pending"]
        assert (Path(jobs[2].workdir) / MARKER).exists() == (third == "submitted")
        # the ones the backend never saw are submitted, once each
        run_ticks(app, lambda: len(db.session.scalars(select(Job).where(Job.state == "succeeded")).all()) >= 5)
        markers = {p.parent for p in Path(app.config["JOBS_ROOT"]).glob(f"*/*/{MARKER}")}
        assert markers == {Path(j.workdir) for j in db.session.scalars(select(Job))}
        first = [j.id for j in jobs]
        assert [db.session.get(Job, i).submit_attempts for i in first] == [1] * taken + [2] * (5 - taken)


def test_kill_at_a_random_moment_never_loses_or_doubles_a_job(app: Flask) -> None:
    """The child submits in a loop; it is killed -9 from outside, mid-burst."""
    with app.app_context():
        make_queue("q1", slots=1)
        make_test(make_template(jobs_in_flight=200, script="sleep 60"), app)
    child = _child(app, "loop")
    deadline = time.monotonic() + 60
    with app.app_context():
        while time.monotonic() < deadline:
            db.session.expire_all()
            submitted = db.session.scalars(select(Job.id).where(Job.backend_id.is_not(None))).all()
            if len(submitted) >= 20:
                break
            time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    with app.app_context():
        reconcile(app)
        db.session.expire_all()
        jobs = db.session.scalars(select(Job)).all()
        assert jobs, "the child wrote no job"
        for job in jobs:
            known = (Path(job.workdir) / MARKER).exists()
            assert job.state != "lost", f"{job.name} lost: the local backend proves what it never saw"
            if job.state == "pending":  # never reached the backend: submitted by the next tick
                assert not known, job.name
            else:
                assert known and job.backend_id == job.name, f"{job.name} not adopted"
        job_dirs = {p.parent for p in Path(app.config["JOBS_ROOT"]).glob(f"*/*/{MARKER}")}
        assert job_dirs == {Path(j.workdir) for j in jobs if j.state != "pending"}

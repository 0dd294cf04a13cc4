"""One owner per job: compare-and-set transitions, claims before backend calls,
fenced writes of a host whose tests were adopted.

The races are forced deterministically: the real local backend's calls are
wrapped to stop at a barrier (or to run the other writer right there), so
the second writer acts exactly while the first one is inside its backend
call.  Nothing is faked: the backend, the database and both writers are real.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from hcflask.backends import jobscript
from hcflask.backends.local import MARKER, LocalBackend
from hcflask.engine import actions
from hcflask.engine.common import claimant
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.reconcile import reconcile_pending
from hcflask.engine.jobs.submission import submit_pending
from hcflask.engine.service import hosts
from hcflask.engine.service.core import start_due_tests
from hcflask.extensions import db
from hcflask.models import Job, JobEvent, Queue, RollupTest, RollupTotal, Test, utcnow
from hcflask.states import JobState
from tests.conftest import make_app
from tests.factories import make_queue, make_template, make_test, run_ticks

FINAL = ("succeeded", "failed", "cancelled", "lost")


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], tuple[threading.Event, threading.Event]]]:
    """``paused("find_by_name")``: the real method, stopped at a barrier until released."""
    releases: list[threading.Event] = []

    def pause(method: str) -> tuple[threading.Event, threading.Event]:
        inside, release = threading.Event(), threading.Event()
        releases.append(release)
        real = getattr(LocalBackend, method)

        def held(self: LocalBackend, refs: Sequence[Any]) -> Any:
            inside.set()
            assert release.wait(30), "the test never released the barrier"
            return real(self, refs)

        monkeypatch.setattr(LocalBackend, method, held)
        return inside, release

    yield pause
    for release in releases:
        release.set()


def _in_doubt_job(app: Flask, claimed_by: str) -> int:
    """A pending job whose earlier submit failed (an attempt, no backend id), claimed by ``claimed_by``."""
    with app.app_context():
        make_queue("q1")
        test = make_test(make_template(jobs_in_flight=1, max_jobs=1, script='echo "hc-ok value=1"'), app)
        queue = db.session.scalars(select(Queue)).one()
        job = Job(test=test, queue=queue, backend="local", name=f"hc-{app.config['INSTANCE_NAME']}-doubt",
                  submit_attempts=1, claimed_by=claimed_by,
                  workdir=str(Path(app.config["JOBS_ROOT"]) / str(test.id) / "doubt"))
        db.session.add(job)
        db.session.commit()
        return job.id


def _one_life(app: Flask, job_id: int) -> None:
    """The job was submitted once, reached one final state, and is counted once, there."""
    with app.app_context():
        db.session.expire_all()
        job = db.session.get_one(Job, job_id)
        events = Counter(e.new_state for e in db.session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)))
        assert events["submitted"] == 1, events
        assert sum(events[s] for s in FINAL) == 1 and job.state in FINAL, events
        per_test = db.session.scalars(select(RollupTest).where(RollupTest.test_id == job.test_id)).one()
        counted = {s: getattr(per_test, s) for s in FINAL}
        assert counted == {s: int(s == job.state) for s in FINAL}, counted
        total = db.session.scalars(select(RollupTotal)).one()
        assert {s: getattr(total, s) for s in FINAL} == counted
        assert (Path(job.workdir) / MARKER).exists()


def test_reconcile_leaves_alone_a_job_the_submission_thread_holds(app: Flask, paused: Any) -> None:
    """The issue's race: the submission thread retries an in-doubt job of its own and is inside
    find_by_name when reconcile runs (before: reconcile marked it lost and submission then
    submitted it: pending -> lost -> submitted, counted succeeded and lost)."""
    with app.app_context():
        me = claimant()
    job_id = _in_doubt_job(app, me)
    inside, release = paused("find_by_name")

    def submission() -> None:
        with app.app_context():
            submit_pending()

    worker = threading.Thread(target=submission)
    worker.start()
    assert inside.wait(30)
    with app.app_context():
        assert reconcile_pending() == {"adopted": 0, "resubmitted": 0, "lost": 0, "undecided": 0}
    release.set()
    worker.join(30)
    with app.app_context():
        run_ticks(app, lambda: db.session.get_one(Job, job_id).state in FINAL)
    _one_life(app, job_id)


def test_submission_leaves_alone_a_job_reconcile_holds(app: Flask, paused: Any) -> None:
    """The other order: reconcile is deciding an in-doubt job left by a dead process, and the
    submission thread passes meanwhile; it does not submit it behind reconcile's back."""
    job_id = _in_doubt_job(app, "node-x:1:dead/1")
    inside, release = paused("find_by_name")
    result: dict[str, int] = {}

    def reconcile() -> None:
        with app.app_context():
            result.update(reconcile_pending())

    worker = threading.Thread(target=reconcile)
    worker.start()
    assert inside.wait(30)
    with app.app_context():
        assert submit_pending() == 0
        assert not (Path(db.session.get_one(Job, job_id).workdir) / MARKER).exists()
    release.set()
    worker.join(30)
    assert result == {"adopted": 0, "resubmitted": 1, "lost": 0, "undecided": 0}
    with app.app_context():
        run_ticks(app, lambda: db.session.get_one(Job, job_id).state in FINAL)
    _one_life(app, job_id)


def test_a_transition_that_lost_is_neither_applied_nor_counted(app: Flask) -> None:
    """Two writers read the job at one version; the second to write is refused, and only the
    winner's final state reaches the rollups."""
    with app.app_context():
        make_queue("q1")
        test = make_test(make_template(), app)
        job = Job(test=test, queue=db.session.scalars(select(Queue)).one(), backend="local", name="hc-cas",
                  state="running", workdir="/nonexistent")
        db.session.add(job)
        db.session.commit()
        with Session(db.engine) as first, Session(db.engine) as second:
            mine, theirs = first.get_one(Job, job.id), second.get_one(Job, job.id)
            mine.ended_at = utcnow()
            mine.transition(JobState.SUCCEEDED)
            first.commit()
            with pytest.raises(StaleDataError):  # at the first flush of the stale job
                theirs.ended_at = utcnow()
                theirs.transition(JobState.LOST, note="decided on a stale read")
                second.commit()
        db.session.expire_all()
        assert db.session.get_one(Job, job.id).state == "succeeded"
        total = db.session.scalars(select(RollupTotal)).one()
        assert (total.succeeded, total.lost) == (1, 0)
        assert db.session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job.id)) == 1


def test_a_host_whose_test_was_adopted_mid_tick_is_fenced(app: Flask, caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """node-b's monitor tick has loaded its jobs and is inside the backend's poll when testhost
    adopts its test: every write node-b makes after that is refused, and it says so once."""
    node_b = make_app(Path(app.instance_path), HOST_NAME="node-b")
    with node_b.app_context():
        hosts.claim()
    release = Path(app.instance_path) / "release"  # the job ends when the test says (it starts on its own)
    script = f'while [ ! -e {release} ]; do sleep 0.05; done; echo "hc-ok value=1"'
    with app.app_context():
        make_queue("q1")
        test_id = actions.start_test(make_template(script=script), actor="tests", host="node-b").id
    with node_b.app_context():
        start_due_tests()
        run_ticks(node_b, lambda: db.session.scalar(select(func.count()).select_from(Job)
                                                    .where(Job.backend_id.is_not(None))) >= 1)
        workdirs = [Path(w) for w in db.session.scalars(select(Job.workdir).where(Job.backend_id.is_not(None)))]
    release.touch()
    deadline = time.monotonic() + 30
    while not all((w / jobscript.RESULT).exists() for w in workdirs):
        assert time.monotonic() < deadline, "the released job did not finish"
        time.sleep(0.05)
    real = LocalBackend.poll_many

    def adopted_meanwhile(self: LocalBackend, refs: Sequence[Any]) -> Any:
        with app.app_context():  # the other host adopts while node-b waits for its backend
            test = db.session.get_one(Test, test_id)
            hosts.adopt("node-b", [test], utcnow())
            db.session.commit()
        return real(self, refs)

    monkeypatch.setattr(LocalBackend, "poll_many", adopted_meanwhile)
    with app.app_context():
        before = {j.id: (j.state, j.version) for j in db.session.scalars(select(Job))}
    engine_log = logging.getLogger("hcflask.engine")  # the app's logging does not propagate to root
    engine_log.addHandler(caplog.handler)
    try:
        monitor_tick(node_b)
        monitor_tick(node_b)  # nothing of the test is node-b's now: no second message, no write
    finally:
        engine_log.removeHandler(caplog.handler)
    with app.app_context():
        test = db.session.get_one(Test, test_id)
        assert (test.host, test.epoch) == ("testhost", 2)
        after = {j.id: (j.state, j.version) for j in db.session.scalars(select(Job))}
        # only the adoption's version bump: node-b's late judging matched no row
        assert after == {i: (s, v + 1) for i, (s, v) in before.items()}
    fenced = [r.getMessage() for r in caplog.records if "fenced" in r.getMessage()]
    assert len(fenced) == 1 and fenced[0].startswith(f"fenced: tests {test_id} adopted by testhost at ")

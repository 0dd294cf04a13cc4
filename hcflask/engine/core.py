"""The core tick: start due tests, end finished ones, renew templates,
clean up jobs of ended tests, and run the hooks (the robot) registered by
other engine modules."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, or_, select

from hcflask.backends import BackendUnavailable
from hcflask.engine.bands import flag_pass
from hcflask.engine.common import backend, job_ref, log, my_host, record_health, tick
from hcflask.engine.robot import robot_pass
from hcflask.extensions import db
from hcflask.models import Job, Queue, Template, Test, match_queues, utcnow
from hcflask.states import IN_FLIGHT_JOB_STATES, JobState, QueueStatus, TestState

#: functions called at the end of every core tick (e.g. the robot)
CORE_HOOKS: list[Callable[[], object]] = []
#: how long before a cancel request that got no effect is sent again
CANCEL_RETRY = timedelta(seconds=60)
IN_FLIGHT = [s.value for s in IN_FLIGHT_JOB_STATES]


def start_due_tests() -> int:
    now = utcnow()
    due = db.session.scalars(select(Test).where(
        Test.state == TestState.SCHEDULED.value, Test.start_at <= now,
        or_(Test.host.is_(None), Test.host == my_host()),
    )).all()
    names = list(db.session.scalars(select(Queue.name).order_by(Queue.name)))
    for test in due:
        test.queue_names = match_queues(test.snapshot["queues"], names)
        test.host = my_host()
        if not test.queue_names:
            test.state, test.finished_at = TestState.ERROR.value, now
            test.note = f"no queue matches {', '.join(test.snapshot['queues'])}"
            continue
        test.state, test.started_at = TestState.RUNNING.value, now
        log.info("test %s (%s) started on %d queues", test.id, test.template_name, len(test.queue_names))
    db.session.commit()
    return len(due)


def end_test(test: Test, state: TestState, note: str) -> None:
    test.state, test.finished_at, test.note = state.value, utcnow(), note
    log.info("test %s %s: %s", test.id, state.value, note)


def end_finished_tests() -> int:
    now = utcnow()
    ended = 0
    for test in db.session.scalars(select(Test).where(Test.state == TestState.RUNNING.value)):
        if test.end_at <= now:
            end_test(test, TestState.COMPLETED, "lifetime over")
            ended += 1
        elif test.snapshot.get("max_jobs") and _all_jobs_judged(test):
            end_test(test, TestState.COMPLETED, f"all {test.snapshot['max_jobs']} jobs per queue judged")
            ended += 1
    db.session.commit()
    return ended


def _all_jobs_judged(test: Test) -> bool:
    rows = dict(db.session.execute(
        select(Job.queue_id, func.count()).where(Job.test_id == test.id).group_by(Job.queue_id)
    ).all())
    in_flight = db.session.scalar(
        select(func.count()).where(Job.test_id == test.id, Job.state.in_(IN_FLIGHT))
    )
    queues = db.session.scalars(select(Queue).where(
        Queue.name.in_(test.queue_names), Queue.status != QueueStatus.OFFLINE.value
    )).all()
    return not in_flight and all(rows.get(q.id, 0) >= test.snapshot["max_jobs"] for q in queues)


def cancel_leftover_jobs() -> int:
    """Jobs of ended tests: drop unsubmitted ones, ask backends to cancel the rest.

    Running jobs are left to finish unless ``jobs.cancel_running`` is set.
    """
    now = utcnow()
    states = [JobState.PENDING.value, JobState.SUBMITTED.value, JobState.QUEUED.value]
    if current_app.config["JOBS_CANCEL_RUNNING"]:
        states.append(JobState.RUNNING.value)
    jobs = db.session.scalars(select(Job).join(Test).where(
        Test.state.in_([TestState.COMPLETED.value, TestState.CANCELLED.value, TestState.ERROR.value]),
        Test.host == my_host(), Job.state.in_(states),
        or_(Job.cancel_requested_at.is_(None), Job.cancel_requested_at < now - CANCEL_RETRY),
    )).all()
    by_backend: dict[str, list[Job]] = {}
    for job in jobs:
        if job.backend_id is None:
            job.ended_at = now
            job.failure_reason = "test ended before the job was submitted"
            job.transition(JobState.CANCELLED, note=job.failure_reason)
        else:
            by_backend.setdefault(job.backend, []).append(job)
    for name, group in by_backend.items():
        try:
            backend(name).cancel_many([job_ref(j) for j in group])
        except BackendUnavailable as exc:
            record_health(name, str(exc))
            continue
        for job in group:
            job.cancel_requested_at = now
    db.session.commit()
    return len(jobs)


def renew_templates() -> int:
    """Start a new test for each renewing template that has none scheduled or running."""
    busy = select(Test.template_id).where(
        Test.state.in_([TestState.SCHEDULED.value, TestState.RUNNING.value]), Test.template_id.is_not(None)
    )
    templates = db.session.scalars(select(Template).where(
        Template.active.is_(True), Template.renew.is_(True), Template.id.not_in(busy)
    )).all()
    for template in templates:
        db.session.add(Test.from_template(template, created_by="renew"))
    db.session.commit()
    return len(templates)


@tick("core")
def core_tick() -> dict[str, int]:
    summary = {
        "ended": end_finished_tests(),
        "renewed": renew_templates(),
        "started": start_due_tests(),
        "cancelled": cancel_leftover_jobs(),
    }
    summary.update(robot_pass())
    summary.update(flag_pass())
    for hook in CORE_HOOKS:
        hook()
    return summary

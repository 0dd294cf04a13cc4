"""The core tick: watch the other hosts, end finished tests, renew templates,
start due tests, and run the robot and the performance bands.

With several processes against one database only the elected core runs it
(see :mod:`hcflask.engine.service.scheduler`), and each of its commits is fenced by
the core lease's epoch (:mod:`hcflask.engine.service.corelease`); the work that talks to a backend
(cancelling the jobs of ended tests) belongs to the host that drives the
test and runs in its submission tick.
"""
from __future__ import annotations

from sqlalchemy import func, select

from hcflask.engine.common import log, my_host, tick
from hcflask.engine.jobs import stress
from hcflask.engine.robot.bands import flag_pass
from hcflask.engine.robot.robot import robot_pass
from hcflask.engine.service import corelease
from hcflask.engine.service.hosts import watch_hosts
from hcflask.extensions import db
from hcflask.models import Job, Queue, Template, Test, match_queues, messages, utcnow
from hcflask.states import IN_FLIGHT, QueueStatus, TestState


def start_due_tests() -> int:
    now = utcnow()
    due = db.session.scalars(select(Test).where(
        Test.state == TestState.SCHEDULED.value, Test.start_at <= now,
    )).all()
    live = {q.name: q for q in db.session.scalars(Queue.live().order_by(Queue.name))}
    for test in due:
        test.set_queues([live[name] for name in match_queues(test.snapshot["queues"], list(live))])
        test.host = test.host or my_host()
        if not test.queue_names:
            test.state, test.finished_at = TestState.ERROR.value, now
            test.note = messages.no_queue_matches(test.snapshot["queues"])
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
        elif stress.max_jobs(test.snapshot) and _all_jobs_judged(test):
            aborted = f" ({len(test.aborted)} aborted)" if test.aborted else ""
            end_test(test, TestState.COMPLETED,
                     f"all {stress.max_jobs(test.snapshot)} jobs per queue judged{aborted}")
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
        Queue.id.in_(test.queue_ids), Queue.status != QueueStatus.OFFLINE.value
    )).all()
    limit = stress.max_jobs(test.snapshot)
    return not in_flight and all(rows.get(q.id, 0) >= limit for q in queues
               if test.name_of(q.id, q.name) not in (test.aborted or {}))


def renew_templates() -> int:
    """Start a new test for each renewing template that has none scheduled or running."""
    busy = select(Test.template_id).where(
        Test.state.in_([TestState.SCHEDULED.value, TestState.RUNNING.value]), Test.template_id.is_not(None)
    )
    templates = db.session.scalars(select(Template).where(
        Template.active.is_(True), Template.renew.is_(True), Template.id.not_in(busy)
    )).all()
    for template in templates:
        # the renewal stays on the host of the test it follows
        host = db.session.scalar(select(Test.host).where(Test.template_id == template.id)
                                 .order_by(Test.id.desc()).limit(1))
        test = Test.from_template(template, created_by="renew")
        test.host = host
        db.session.add(test)
    db.session.commit()
    return len(templates)


@tick("core")
@corelease.fenced
def core_tick() -> dict[str, int]:
    # adopted tests' in-doubt jobs are decided by this host's submission tick (one thread per job)
    summary = watch_hosts()
    corelease.watch_core_alerts()
    summary.update({
        "ended": end_finished_tests(),
        "renewed": renew_templates(),
        "started": start_due_tests(),
    })
    summary.update(robot_pass())
    summary.update(flag_pass())
    return summary

"""The monitor tick: one batched status call per backend, then judge what finished.

"Cannot reach the batch system" is an outage of the backend: its jobs keep
their state until it answers again.  A finished job is judged from the
wrapper's own result file and output (see :mod:`hcflask.engine.jobs.judge`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import Row, select
from sqlalchemy.orm import selectinload

from hcflask.backends import BackendUnavailable, JobRef, Status, jobscript
from hcflask.data.stagein import metric_specs
from hcflask.engine.common import backend, end_transaction, log, my_host, record_health, tick
from hcflask.engine.jobs import fence
from hcflask.engine.jobs.judge import judge
from hcflask.extensions import db
from hcflask.models import FinalState, Job, JobMetric, Queue, Test, utcnow
from hcflask.states import JobState

WATCHED = [JobState.SUBMITTED.value, JobState.QUEUED.value, JobState.RUNNING.value]
#: bytes of stdout read for judging and metrics (its first and last halves when longer)
JUDGE_BYTES = 1 << 20


def apply_status(job: Job, status: Status) -> None:
    """Record what the backend said about one job."""
    if status.state in (JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING):
        job.native_reason = status.reason
        job.host = status.host or job.host
        job.started_at = status.started_at or job.started_at
        if status.state is JobState.RUNNING and job.started_at is None:
            job.started_at = utcnow()
        job.transition(status.state, status.native_state)
        return
    finish(job, status)


def finish(job: Job, status: Status) -> None:
    """Judge a job the backend reports finished (or lost)."""
    workdir = Path(job.workdir)
    result = status.result if status.result is not None else jobscript.read_result(workdir)
    if result is None and status.state in (JobState.SUCCEEDED, JobState.FAILED) and not status.reason:
        if not _result_grace_over(job, status):
            return
        status.reason = (
            f"no result file in {workdir} after {current_app.config['JOBS_RESULT_GRACE_SECONDS']} s: "
            "are the job work dirs ([paths] jobs) on a filesystem the compute nodes see?"
        )
        status.state = JobState.FAILED
    if result is not None:
        jobscript.tidy(workdir)
    stdout = jobscript.ends(workdir / jobscript.STDOUT, JUDGE_BYTES)
    stderr = jobscript.ends(workdir / jobscript.STDERR, 64 * 1024)
    verdict = judge(job.test.workload, status, result, stdout, stderr)
    result = result or {}
    job.exit_code = verdict.exit_code
    job.failure_reason = "" if verdict.state is JobState.SUCCEEDED else verdict.reason
    job.native_reason = ""
    job.host = result.get("host") or status.host or job.host
    job.started_at = jobscript.to_datetime(result.get("start")) or status.started_at or job.started_at
    job.ended_at = jobscript.to_datetime(result.get("end")) or status.ended_at or utcnow()
    job.cpu_seconds = status.cpu_seconds or jobscript.cpu_seconds(result)
    job.judged_at = utcnow()
    units = {n: s.get("unit", "") for n, s in metric_specs(job.test.snapshot).items()}
    for name, value in verdict.metrics.items():
        job.add_row(JobMetric, name=name, value=value, unit=units.get(name, ""))
    job.transition(verdict.state, status.native_state, note=verdict.reason)


def _result_grace_over(job: Job, status: Status) -> bool:
    """A finished job's result file may lag on a shared filesystem: wait a while."""
    grace = timedelta(seconds=current_app.config["JOBS_RESULT_GRACE_SECONDS"])
    if job.ended_at is None:
        job.ended_at = status.ended_at or utcnow()
        job.native_state = status.native_state
        return grace.total_seconds() <= 0
    return utcnow() - job.ended_at >= grace


#: what the monitor reads of every job in flight, every tick (a row, not an ORM object)
SEEN = (Job.id, Job.backend, Job.backend_id, Job.name, Job.workdir, Job.cancel_requested_at, Job.state,
        Job.native_state, Job.native_reason, Job.host, Job.started_at, Queue.name.label("queue_name"),
        Queue.options.label("queue_options"))


def _ref(row: Row[Any]) -> JobRef:
    return JobRef(backend_id=row.backend_id or "", name=row.name, queue=row.queue_name,
                  queue_options=row.queue_options or {},
                  workdir=Path(row.workdir), cancel_requested=row.cancel_requested_at is not None)


def _news(row: Row[Any], status: Status) -> bool:
    """Whether ``status`` says anything :func:`apply_status` would write for the job of ``row``:
    most jobs in flight are as they were at the last tick, and are not loaded again."""
    if status.state.value != row.state or status.state.final:
        return True
    return (status.reason != row.native_reason
            or (status.native_state is not None and status.native_state != row.native_state)
            or (status.host is not None and status.host != row.host)
            or (status.started_at is not None and status.started_at != row.started_at)
            or (status.state is JobState.RUNNING and row.started_at is None))


def poll_jobs(rows: Sequence[Row[Any]], limit: int) -> dict[str, int]:
    """Poll the jobs of ``rows`` (:data:`SEEN`) backend by backend; load and apply what changed,
    at most ``limit`` jobs (the oldest first; ``more`` says that some were left for the next run).
    """
    changed = more = 0
    groups: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        groups[row.backend].append(row)
    for name, group in groups.items():
        end_transaction()  # the poll may be slow: no write lock held meanwhile
        try:
            statuses = backend(name).poll_many([_ref(r) for r in group])
        except BackendUnavailable as exc:
            record_health(name, str(exc))
            db.session.commit()
            continue
        record_health(name, None)
        news = {r.id: statuses[r.backend_id] for r in group
                if r.backend_id in statuses and _news(r, statuses[r.backend_id])}
        if len(news) > limit:  # a tick of bounded length; the rest stays news for the next run
            news = {k: news[k] for k in sorted(news)[:limit]}
            more = 1
        limit -= len(news)
        # loaded after the poll, so they are as fresh as the answer; one changed meanwhile
        # (cancelled, judged elsewhere) is left to the next tick
        jobs = db.session.scalars(select(Job).where(Job.id.in_(news), Job.state.in_(WATCHED)).options(
            selectinload(Job.queue), selectinload(Job.test))).all() if news else []
        for job in jobs:
            before = job.state
            try:
                apply_status(job, news[job.id])
            except FinalState:
                raise  # decided on a state that is gone: the pass is dropped and read again
            except Exception:  # noqa: BLE001 - one odd job must not stop the others
                log.exception("could not apply status %s to job %s", news[job.id], job.name)
                continue
            changed += job.state != before
        db.session.commit()
    return {"changed": changed, "more": more}


@tick("monitor")
def monitor_tick() -> dict[str, int]:
    """One pass over every job in flight of this host's tests (fenced: see :mod:`fence`), applying
    at most ``[scheduler] jobs_per_tick`` changes (the scheduler runs it again at once for more)."""
    fence.hold("monitor")
    rows = db.session.execute(
        select(*SEEN).join(Test, Job.test_id == Test.id).join(Queue, Job.queue_id == Queue.id).where(
            Job.state.in_(WATCHED), Job.backend_id.is_not(None), Test.host == my_host())
    ).all()
    return poll_jobs(rows, int(current_app.config["SCHEDULER_JOBS_PER_TICK"]))

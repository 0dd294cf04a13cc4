"""The submission tick: keep N jobs in flight on every queue of every running test.

Two phases, each committed on its own: first the job rows are written
(with their unique names), then the backends are asked to run them.  A
crash between the two leaves ``pending`` rows that :mod:`reconcile` looks
up by name, so no job is lost and none is submitted twice.

A job is claimed before its backend call: ``submit_attempts`` and
``claimed_by`` are written with a compare-and-set on the job's version
(committed without expiring the loaded rows, so the version checked after the
call is the claimed one).  Reconcile leaves jobs this process claimed alone,
so within one host the two never act on the same job.  If the write after
the call loses (the job changed, or the host was fenced), the submissions
the row does not carry are cancelled: they are this host's, made too late.

Jobs are written, claimed and recorded a round at a time (the backend's
``submit_batch``; the local backend takes 1,000), each step one batched
statement (:mod:`hcflask.engine.jobs.jobwrite`), so a tick's cost in queries does
not grow with its jobs.  A tick writes at most ``[scheduler] jobs_per_tick``
new jobs, shared round robin over the tests and queues that need them.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import String, cast, func, insert, literal, or_, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from hcflask.backends import BackendUnavailable, JobSpec, Resources, SubmitError, jobscript
from hcflask.data import plan as inputs
from hcflask.data import stagein, stageout
from hcflask.engine.common import (
    backend,
    backend_enforces_walltime,
    by_backend,
    claimant,
    end_transaction,
    job_ref,
    log,
    my_host,
    record_health,
    tick,
)
from hcflask.engine.jobs import fence, stress
from hcflask.engine.service.clock import db_now
from hcflask.engine.service.diskguard import submission_allowed
from hcflask.extensions import db
from hcflask.models import Job, Queue, Test, utcnow
from hcflask.states import IN_FLIGHT, JobState, QueueStatus, TestState

#: how long before a cancel request that got no effect is sent again
CANCEL_RETRY = timedelta(seconds=60)


def jobs_needed(snapshot: dict[str, Any], in_flight: int, total: int, test_in_flight: int) -> int:
    """How many new jobs one queue of one test needs now (the top-up arithmetic)."""
    need = snapshot["jobs_in_flight"] - in_flight
    if snapshot.get("max_jobs"):
        need = min(need, snapshot["max_jobs"] - total)
    if snapshot.get("max_running"):
        need = min(need, snapshot["max_running"] - test_in_flight)
    return max(need, 0)


def _counts(test_ids: list[int], states: list[str] | None) -> Counter[tuple[int, int]]:
    query = select(Job.test_id, Job.queue_id, func.count()).where(Job.test_id.in_(test_ids))
    if states is not None:
        query = query.where(Job.state.in_(states))
    rows = db.session.execute(query.group_by(Job.test_id, Job.queue_id))
    return Counter({(t, q): n for t, q, n in rows})


def create_jobs() -> list[Job]:
    """Phase 1: write the rows of the jobs every running test needs now."""
    tests = db.session.scalars(
        select(Test).where(Test.state == TestState.RUNNING.value, Test.host == my_host())
    ).all()
    if not tests:
        return []
    queues = {q.id: q for q in db.session.scalars(select(Queue))}
    ids = [t.id for t in tests]
    in_flight = _counts(ids, IN_FLIGHT)
    totals = _counts(ids, None)
    stress.check_aborts([t for t in tests if t.kind == "stress"])
    now = utcnow()
    wanted: dict[tuple[int, int], tuple[Test, Queue, int]] = {}
    for test in tests:
        test_in_flight = sum(n for (t, _), n in in_flight.items() if t == test.id)
        # by id: a queue deleted meanwhile (and its name taken by a new one) gets nothing more of this test
        for queue_id, name in zip(test.queue_ids or [], test.queue_names, strict=False):
            queue = queues.get(queue_id)
            if (queue is None or queue.deleted_at is not None or queue.status == QueueStatus.OFFLINE.value
                    or not inputs.ready(test, queue)):
                continue
            key = (test.id, queue.id)
            if test.kind == "stress":
                need = stress.jobs_needed(test, name, in_flight[key], totals[key], now)
            else:
                need = jobs_needed(test.snapshot, in_flight[key], totals[key], test_in_flight)
            if need:
                wanted[key] = (test, queue, need)
            test_in_flight += need
    granted = share({k: n for k, (_, _, n) in wanted.items()}, int(current_app.config["SCHEDULER_JOBS_PER_TICK"]))
    rows: list[dict[str, Any]] = []
    for key, n in granted.items():
        test, queue, _ = wanted[key]
        # a unique placeholder name until the id (and so the real name) is known
        rows += [{"test_id": test.id, "queue_id": queue.id, "template_id": test.template_id,
                  "backend": queue.backend, "name": f"new-{uuid.uuid4().hex}",
                  "inputs": inputs.files_for(test, queue, totals[key] + i)} for i in range(n)]
    created = _insert(rows)
    end_transaction()  # not expired: submit_pending finds them loaded, not read again
    return created


def share(needs: dict[tuple[int, int], int], cap: int) -> dict[tuple[int, int], int]:
    """At most ``cap`` new jobs over the (test, queue) pairs that need some, dealt one at a time
    in turn, from a pair that moves on every capped tick: a tick that cannot do everything
    gives every test and queue its part, and the next tick starts where this one stopped."""
    if sum(needs.values()) <= cap:
        return needs
    keys = sorted(needs)
    turn = current_app.extensions.get("hc_share_turn", 0) % len(keys)
    current_app.extensions["hc_share_turn"] = turn + 1
    order = keys[turn:] + keys[:turn]
    granted = dict.fromkeys(order, 0)
    for key in order:  # whole rounds first, then one more each for the first ones in turn
        granted[key] = min(needs[key], cap // len(order))
    left = cap - sum(granted.values())
    while left:
        for key in order:
            if left and granted[key] < needs[key]:
                granted[key] += 1
                left -= 1
    return {k: n for k, n in granted.items() if n}


def _insert(rows: list[dict[str, Any]]) -> list[Job]:
    """Write the new job rows: one batched INSERT ... RETURNING and one UPDATE for their names.

    Not through the ORM's flush, which inserts row by row where it cannot match the returned
    ids to the rows by their order (SQLite); so the fencing check the flush would make is
    made here first, in the same transaction."""
    if not rows:
        return []
    fence.check(db.session(), {r["test_id"] for r in rows})
    jobs = list(db.session.scalars(insert(Job).returning(Job, sort_by_parameter_order=False), rows))
    _name(jobs, f"hc-{current_app.config['INSTANCE_NAME']}-", Path(current_app.config["JOBS_ROOT"]))
    return sorted(jobs, key=lambda j: j.id)


def _name(jobs: list[Job], prefix: str, root: Path) -> None:
    """Give the new rows their names and work dirs from their ids, in one UPDATE.

    The rows are this transaction's own (no one else sees them yet), so the
    statement needs no compare-and-set; the loaded objects get the same values
    as already written, so the commit does not write each of them again.
    """
    ids = [j.id for j in jobs]
    db.session.execute(
        update(Job).where(Job.id.in_(ids)).values(
            name=literal(prefix) + cast(Job.id, String),
            workdir=literal(f"{root}/") + cast(Job.test_id, String) + "/" + cast(Job.id, String),
        ).execution_options(synchronize_session=False))
    for job in jobs:
        set_committed_value(job, "name", f"{prefix}{job.id}")
        set_committed_value(job, "workdir", f"{root}/{job.test_id}/{job.id}")


def build_spec(job: Job) -> JobSpec:
    """Write the job's wrapper into its work dir and describe the job for the backend."""
    workload = job.test.workload
    resources = Resources(**workload["resources"])
    env = {
        "HC_QUEUE": job.queue.name, "HC_TEST_ID": str(job.test_id), "HC_JOB_ID": str(job.id),
        "HC_TEMPLATE": job.test.template_name, "HC_JOB_NAME": job.name,
        # what the job asked for, so a probe can compare it with what it was given
        "HC_CORES": str(resources.cores), "HC_MEMORY_MB": str(resources.memory_mb),
        "HC_WALLTIME": str(resources.walltime), "HC_GPUS": str(resources.gpus),
    }
    payload = jobscript.payload_script(workload)
    inputs_doc = job.test.snapshot.get("inputs") or {}
    staging = stagein.block(job.inputs, inputs_doc.get("access", "copy"))
    outputs = job.test.snapshot.get("outputs")
    writing = ""
    if outputs:
        staging += stageout.prologue(outputs)
        writing = stageout.block(outputs, stageout.scope_of(outputs, current_app.config),
                                 int(workload["success"].get("exit_code", 0)))
        if current_app.config.get("RUCIO_JOB_CONFIG"):
            env["RUCIO_CONFIG"] = str(current_app.config["RUCIO_JOB_CONFIG"])
    workdir = Path(job.workdir)
    walltime = None if backend_enforces_walltime(job.backend) else resources.walltime
    text = jobscript.render(
        payload=payload, env=env, workdir=workdir, walltime=walltime,
        output_cap=current_app.config["JOBS_OUTPUT_CAP"],
        header=f"# {job.name}: test {job.test_id} ({job.test.template_name}), queue {job.queue.name}\n",
        stagein=staging, stageout=writing,
    )
    script = jobscript.write(workdir, text)
    return JobSpec(
        job_id=job.id, name=job.name, queue=job.queue.name, queue_options=job.queue.options or {},
        workdir=workdir, script=script, resources=resources, payload=payload, env=env,
        stagein=staging, stageout=writing, input_dataset=str(inputs_doc.get("dataset") or ""),
        inputs=tuple(job.inputs or ()),
    )


def adopt(job: Job, backend_id: str, note: str) -> None:
    job.backend_id = backend_id
    job.submitted_at = job.submitted_at or utcnow()
    job.transition(JobState.SUBMITTED, note=note)


def submit_pending(limit: int | None = None) -> int:
    """Phase 2: hand every pending job of this host's running tests to its backend."""
    query = (
        select(Job).join(Test).where(
            Job.state == JobState.PENDING.value, Job.backend_id.is_(None),
            Test.state == TestState.RUNNING.value, Test.host == my_host(),
            # never tried, or tried by this process; jobs another process claimed are in doubt:
            # reconcile looks them up first
            or_(Job.submit_attempts == 0, Job.claimed_by == claimant()),
        ).order_by(Job.id).options(selectinload(Job.test), selectinload(Job.queue))
    )
    if limit is not None:
        query = query.limit(limit)
    return sum(_submit_to(name, jobs) for name, jobs in by_backend(db.session.scalars(query)).items())


def _submit_to(name: str, jobs: list[Job]) -> int:
    adapter = backend(name)
    retried = [j for j in jobs if j.submit_attempts > 0]
    try:
        if retried:
            refs = [job_ref(j) for j in retried]
            end_transaction()
            found = adapter.find_by_name(refs)
            for job in retried:
                if job.name in found:
                    adopt(job, found[job.name], "found in the batch system by name after a failed submit")
            db.session.commit()
        batch = max(1, int(getattr(adapter, "submit_batch", 1)))
        # decided on the state read now: the claim's compare-and-set holds it to that state
        todo = [j for j in jobs if j.backend_id is None and j.state == JobState.PENDING.value]
        done = 0
        for start in range(0, len(todo), batch):
            done += _submit_batch(adapter, todo[start:start + batch])
    except BackendUnavailable as exc:
        db.session.rollback()
        record_health(name, str(exc))
        db.session.commit()
        return 0
    record_health(name, None)
    db.session.commit()
    return done


def _submit_batch(adapter: Any, jobs: list[Job]) -> int:
    specs = []
    now = db_now()  # the claim's time on the one clock: reconcile's MinJobAge proof reads it
    for job in jobs:
        job.submit_attempts += 1
        job.claimed_by, job.updated_at = claimant(), now
        specs.append(build_spec(job))
    end_transaction()  # the claim; the rows stay loaded at the version it wrote
    results = adapter.submit_many(specs)
    done = 0
    unavailable: BackendUnavailable | None = None
    for job, result in zip(jobs, results, strict=True):
        if isinstance(result, str):
            adopt(job, result, "submitted")
            done += 1
        elif isinstance(result, SubmitError):
            job.failure_reason = f"submission refused: {result}"
            job.ended_at = job.judged_at = utcnow()
            job.transition(JobState.FAILED, note=job.failure_reason)
        elif isinstance(result, BackendUnavailable):
            unavailable = result
    try:
        db.session.commit()
    except (StaleDataError, fence.Fenced):
        db.session.rollback()
        _disown(adapter, [(j, r) for j, r in zip(jobs, results, strict=True) if isinstance(r, str)])
        raise
    if unavailable is not None:
        raise unavailable
    return done


def _disown(adapter: Any, submitted: list[tuple[Job, str]]) -> None:
    """The rows of jobs this pass just submitted changed under it (another host adopted them,
    or reconcile decided): cancel each submission its row does not carry, so no job runs twice."""
    orphans = []
    for job, backend_id in submitted:
        db.session.refresh(job)
        if job.backend_id != backend_id:
            orphans.append(dataclasses.replace(job_ref(job), backend_id=backend_id))
    end_transaction()
    if orphans:
        log.warning("cancelling %d submissions made after their jobs changed hands: %s", len(orphans),
                    [(o.name, o.backend_id) for o in orphans])
        adapter.cancel_many(orphans)


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
    groups = {name: (group, [job_ref(j) for j in group])
              for name, group in by_backend(j for j in jobs if j.backend_id is not None).items()}
    for job in jobs:
        if job.backend_id is None:
            job.ended_at = now
            job.failure_reason = "test ended before the job was submitted"
            job.transition(JobState.CANCELLED, note=job.failure_reason)
    for name, (group, refs) in groups.items():
        end_transaction()  # scancel may be slow: no write lock held meanwhile
        try:
            backend(name).cancel_many(refs)
        except BackendUnavailable as exc:
            record_health(name, str(exc))
            continue
        for job in group:
            job.cancel_requested_at = now
    db.session.commit()
    return len(jobs)


@tick("submission")
def submission_tick() -> dict[str, int]:
    """One pass for this host: cancel the jobs of ended tests, write the rows
    that are needed, decide the jobs in doubt (adopted from a dead host, or left by
    a crash), then submit every pending job (not while the disk is low)."""
    from hcflask.engine.jobs.reconcile import reconcile_pending  # it builds on this module

    fence.hold("submission")
    cancelled = cancel_leftover_jobs()
    if not submission_allowed():
        return {"cancelled": cancelled, "created": 0, "submitted": 0, "paused": 1}
    inputs.prepare()  # asks Rucio, outside any transaction, for what create_jobs hands out
    created = create_jobs()
    doubt = reconcile_pending()
    # at the cap, the tests may need more: the scheduler runs the tick again at once
    more = int(len(created) >= int(current_app.config["SCHEDULER_JOBS_PER_TICK"]))
    return {"cancelled": cancelled, "created": len(created), **doubt, "submitted": submit_pending(), "more": more}

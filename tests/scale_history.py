"""A history of jobs written through the ORM (so the rollup hook sees every
final state), and direct counts over the raw job rows to check rollups by."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from hcflask.engine.data.rollups import FINAL, OUTCOMES, cores_of, reason_key
from hcflask.extensions import db
from hcflask.models import Job, Rollup, RollupReason, RollupTest, Test
from hcflask.models.rollup import COUNTS
from hcflask.states import JobState
from tests.factories import make_queue, make_template, make_test

REASONS = ["exit 1: segfault in /scratch/job/12345/payload", "exit 2: disk quota", "timeout after 00:01:00"]


def setup(app: Flask, queues: int = 3, templates: int = 2) -> list[Test]:
    """Queues and running tests (through the real actions and core tick)."""
    names = [make_queue(f"q{i}").name for i in range(queues)]
    return [make_test(make_template(f"t{i}", names, workload={"resources": {"cores": i + 1, "walltime": 60}}), app)
            for i in range(templates)]


def new_job(test: Test, queue_id: int, created: datetime, n: int, **fields: Any) -> Job:
    fields.setdefault("state", JobState.PENDING.value)
    job = Job(test_id=test.id, queue_id=queue_id, name=f"hc-hist-{test.id}-{n}", backend="local",
              created_at=created, **fields)
    db.session.add(job)
    return job


def finish(job: Job, rng: random.Random, ended: datetime) -> None:
    """Move ``job`` to a random final state at ``ended`` (as judging, cancel or reconcile would)."""
    roll = rng.random()
    job.started_at = ended - timedelta(seconds=rng.randint(1, 3600)) if roll < 0.9 else None
    job.ended_at = ended
    if roll < 0.6:
        job.transition(JobState.SUCCEEDED)
    elif roll < 0.85:
        job.failure_reason = rng.choice(REASONS)
        job.transition(JobState.FAILED, note=job.failure_reason)
    elif roll < 0.95:
        job.failure_reason = "test ended before the job was submitted"
        job.transition(JobState.CANCELLED)
    else:
        job.failure_reason = "never reached the batch system"
        job.transition(JobState.LOST)


def direct_counts() -> dict[tuple[Any, ...], float]:
    """Per (queue, template, day, column), and per ("test", test, queue, outcome):
    counted straight from the job rows."""
    names = {t.id: (t.template_name, cores_of(t.snapshot)) for t in db.session.scalars(select(Test))}
    column = {"succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled", "lost": "lost"}
    out: dict[tuple[Any, ...], float] = defaultdict(float)
    for job in db.session.scalars(select(Job).where(Job.state.in_(FINAL))):
        template, cores = names[job.test_id]
        key = (job.queue_id, template, job.ended_at.date())
        wall = (job.ended_at - job.started_at).total_seconds() if job.started_at else 0.0
        out[(*key, column[job.state])] += 1
        out[("test", job.test_id, job.queue_id, job.state)] += 1
        out[(*key, "wall_seconds")] += wall
        out[(*key, "core_seconds")] += wall * cores
        if job.state in ("failed", "lost"):
            out[(*key, "reason:" + reason_key(job.failure_signature))] += 1
    return out


def rollup_counts() -> dict[tuple[Any, ...], float]:
    """The same keys, read from the rollups (zeros left out)."""
    out: dict[tuple[Any, ...], float] = {}
    for row in db.session.scalars(select(Rollup)):
        for name in COUNTS:
            if getattr(row, name):
                out[(row.queue_id, row.template, row.day, name)] = float(getattr(row, name))
    for reason in db.session.scalars(select(RollupReason)):
        out[(reason.queue_id, reason.template, reason.day, "reason:" + reason.reason)] = float(reason.n)
    for row in db.session.scalars(select(RollupTest)):
        for name in OUTCOMES:
            if getattr(row, name):
                out[("test", row.test_id, row.queue_id, name)] = float(getattr(row, name))
    return out


def close(a: dict[tuple[Any, ...], float], b: dict[tuple[Any, ...], float]) -> list[tuple[Any, ...]]:
    """Keys where the two differ (beyond float rounding)."""
    return [k for k in set(a) | set(b) if abs(a.get(k, 0.0) - b.get(k, 0.0)) > 1e-6 * max(1.0, abs(a.get(k, 0.0)))]

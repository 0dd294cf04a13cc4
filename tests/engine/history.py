"""Finished jobs for scenarios with many queues, written through the engine's own code.

Running 280 real local jobs for a 20-queue outage would take minutes, so
these helpers write what a finished job leaves behind -- the job row, the
wrapper's ``result.json`` and its output -- and hand it to the monitor's
:func:`~hcflask.engine.jobs.monitor.finish`, the same judge and writer a real
job's end goes through (verdict, failure reason, metrics, ``judged_at``).
Only the end time is chosen by the scenario, so passes can be placed at
known times (``robot_pass(now=t)``) without sleeping.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import select

from hcflask.backends import Status
from hcflask.engine.jobs.monitor import finish
from hcflask.extensions import db
from hcflask.models import Job, Queue, Test, utcnow
from hcflask.states import JobState
from tests.factories import make_queue, make_template, make_test

EPOCH = datetime(1970, 1, 1)


def start(app: Flask, queues: list[str], template: str = "t1") -> Test:
    """Queues and one running exclusion-driving test over them."""
    for name in queues:
        make_queue(name)
    return make_test(make_template(template, queues, autoexclusion=True, lifetime=86400), app)


Text = Callable[[str, int], str]


def finish_job(test: Test, queue: str, ok: bool, ended: datetime, value: float = 42.0, text: Text | None = None) -> Job:
    """One job of ``test`` on ``queue`` that ended at ``ended``: succeeded, or failed with 'disk full'
    (or what ``text(queue, job id)`` says: the stderr line of the failure)."""
    row = db.session.scalar(select(Queue).where(Queue.name == queue))
    job = Job(test_id=test.id, queue_id=row.id, name=f"hc-history-{test.id}-{queue}-{ended.timestamp()}-{ok}",
              state=JobState.RUNNING.value, backend="local", backend_id="0")
    db.session.add(job)
    db.session.flush()
    path = Path(current_app.instance_path) / "jobs" / "history" / str(job.id)
    path.mkdir(parents=True)
    end = (ended - EPOCH).total_seconds()
    (path / "result.json").write_text(json.dumps({"exit_code": 0 if ok else 3, "start": end - 30, "end": end,
                                                  "host": "node1", "timeout": False}))
    (path / "stdout").write_text(f"hc-ok value={value}\n" if ok else "")
    (path / "stderr").write_text("" if ok else (text(queue, job.id) if text else f"disk full on {queue}") + "\n")
    job.workdir = str(path)
    finish(job, Status(JobState.SUCCEEDED if ok else JobState.FAILED))
    db.session.commit()
    return job


def jobs(test: Test, queues: list[str], ok: bool, before: datetime, count: int = 1, text: Text | None = None) -> None:
    """``count`` jobs per queue, ending one minute apart, the last a minute before ``before``."""
    for name in queues:
        for i in range(count, 0, -1):
            finish_job(test, name, ok, before - timedelta(minutes=i), text=text)


def per_node(cause: str) -> Text:
    """A failure text that differs on every job, as real stderr lines do: the node, its address,
    the time and a pid change, ``cause`` stays."""
    def text(_queue: str, job_id: int) -> str:
        n = job_id * 7919 % 10007
        return (f"{cause} on wn{n:04d}.site.example ({n % 250 + 1}.{job_id % 250}.{n % 199}.7) "
                f"at {n % 24:02d}:{job_id % 60:02d}:{n % 60:02d} pid {n * 13 + job_id}")
    return text


def base_time() -> datetime:
    """A pass clock a minute ahead of the wall clock (jobs are judged now, before every pass)."""
    return utcnow().replace(microsecond=0) + timedelta(minutes=1)

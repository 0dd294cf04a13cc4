"""The month of jobs for bench_scale.py, written with bulk inserts plus the
project's own rollup writer (:func:`hcflask.engine.data.rollups.record`), so the
rollups the pages read are the ones a real instance would have.

Per day: ``per_day`` jobs over every queue and the day's tests (one test per
template per day, the last day's still running), ~8 % failed with a few
reasons, ~1 % cancelled and lost, 4 state events and ~1.9 metrics per job;
the last day also has jobs in flight.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from hcflask.engine import actions
from hcflask.engine.data.rollups import Outcome, record
from hcflask.extensions import db
from hcflask.models import Job, JobEvent, JobMetric, Queue, RobotState, Test, utcnow
from hcflask.models.names import name_key

REASONS = ["exit 1: Segmentation fault", "timeout after 01:00:00", "exit 3: cvmfs not mounted",
           "output lacks required pattern 'hc-ok'", "node failure"]
CHUNK = 20_000
#: a test of the day: id, template name, cores per job, template id
TestRow = tuple[int, str, int, int | None]


def queues_and_templates(queues: int, templates: int) -> tuple[list[int], list[Any]]:
    now = utcnow()
    names = [f"SITE{i:03d}_q" for i in range(queues)]
    # a bulk insert skips Queue's validator, which writes the case-free key of the name
    db.session.execute(insert(Queue), [{"name": n, "name_key": name_key(n), "backend": "local", "status": "online",
                                        "autoexclusion": True, "options": {}, "description": "",
                                        "created_at": now - timedelta(days=400)} for n in names])
    made = [actions.save_template({
        "name": f"hc-{t}", "queues": ["SITE*"], "autoexclusion": t < 3, "lifetime": 86400, "renew": False,
        "workload": {"script": "echo hc-ok value=1", "resources": {"cores": 1 + t % 4, "walltime": 3600},
                     "metrics": {"walltime": r"walltime=(?P<walltime>[0-9.]+)", "events": r"ev=(?P<events>\d+)"}},
    }) for t in range(templates)]
    db.session.commit()
    return list(db.session.scalars(select(Queue.id).order_by(Queue.id))), made


def tests_for(day: datetime, templates: list[Any], running: bool, names: list[str],
              ids: list[int]) -> list[TestRow]:
    rows = []
    for template in templates:
        test = Test.from_template(template, start_at=day, created_by="bench")
        test.state = "running" if running else "completed"
        test.started_at, test.queue_names, test.queue_ids, test.host = day, names, ids, "bench"
        test.finished_at = None if running else day + timedelta(days=1)
        db.session.add(test)
        rows.append(test)
    db.session.commit()
    return [(t.id, t.template_name, int(t.snapshot["workload"]["resources"]["cores"]), t.template_id) for t in rows]


def day_rows(rng: random.Random, day: datetime, per_day: int, queue_ids: list[int],
             tests: list[TestRow], first_id: int) -> Iterator[tuple[dict[str, Any], Outcome | None]]:
    """One day's jobs, in the order they ended (in-flight ones last, no outcome)."""
    step = 86400 / max(per_day, 1)  # today has none just after midnight (UTC)
    for i in range(per_day):
        job_id = first_id + i
        queue_id = queue_ids[i % len(queue_ids)]
        test_id, template, cores, template_id = tests[(i // len(queue_ids)) % len(tests)]
        ended = day + timedelta(seconds=i * step)
        started = ended - timedelta(seconds=rng.randint(60, 1800))
        roll = rng.random()
        state = ("failed" if roll < 0.08 else "cancelled" if roll < 0.09 else "lost" if roll < 0.095
                 else "succeeded")
        reason = rng.choice(REASONS) if state in ("failed", "lost") else ""
        yield ({"id": job_id, "test_id": test_id, "template_id": template_id, "queue_id": queue_id,
                "name": f"hc-bench-{job_id}",
                "state": state, "backend": "local", "backend_id": str(job_id), "native_state": "COMPLETED",
                "native_reason": "", "failure_reason": reason, "exit_code": 1 if state == "failed" else 0,
                "host": "wn01", "workdir": "", "submit_attempts": 1, "created_at": started - timedelta(minutes=5),
                "submitted_at": started - timedelta(minutes=4), "started_at": started, "ended_at": ended,
                "updated_at": ended},
               Outcome(queue_id, template, state, reason, started, ended, cores, test_id))


def in_flight(rng: random.Random, now: datetime, queue_ids: list[int], tests: list[TestRow],
              first_id: int) -> list[dict[str, Any]]:
    rows = []
    for k, (test_id, _template, _cores, template_id) in enumerate(tests):
        for j, queue_id in enumerate(queue_ids):
            job_id = first_id + k * len(queue_ids) + j
            state = rng.choice(["queued", "running"])
            rows.append({"id": job_id, "test_id": test_id, "template_id": template_id, "queue_id": queue_id,
                         "name": f"hc-bench-{job_id}",
                         "state": state, "backend": "local", "backend_id": None, "native_state": state,
                         "native_reason": "", "failure_reason": "", "exit_code": None, "host": None,
                         "workdir": "", "submit_attempts": 1, "created_at": now - timedelta(minutes=10),
                         "submitted_at": now - timedelta(minutes=9), "started_at": None, "ended_at": None,
                         "updated_at": now})
    return rows


def bulk(model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``: with COPY on PostgreSQL (ten times faster than INSERT there), else executemany."""
    if db.session.get_bind().dialect.name != "postgresql":
        db.session.execute(insert(model), rows)
        return
    columns = list(rows[0])
    raw = db.session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def write(rows: list[dict[str, Any]], outcomes: list[Outcome], rng: random.Random) -> None:
    """A chunk of finished jobs with their events and metrics, and their rollups, in one transaction."""
    bulk(Job, rows)
    events, metrics = [], []
    for row in rows:
        steps = [("pending", "submitted", row["submitted_at"]), ("submitted", "queued", row["submitted_at"]),
                 ("queued", "running", row["started_at"]), ("running", row["state"], row["ended_at"])]
        events += [{"job_id": row["id"], "time": t, "old_state": a, "new_state": b, "native_state": "",
                    "note": row["failure_reason"] if b == row["state"] else ""} for a, b, t in steps]
        if row["state"] in ("succeeded", "failed"):
            metrics.append({"job_id": row["id"], "name": "walltime", "value": rng.gauss(600, 60), "unit": "s"})
            if rng.random() < 0.9:
                metrics.append({"job_id": row["id"], "name": "events", "value": float(rng.randint(90, 110)),
                                "unit": ""})
    bulk(JobEvent, events)
    if metrics:
        bulk(JobMetric, metrics)
    record(db.session(), outcomes)
    db.session.commit()


def generate(days: int, per_day: int, queues: int, templates: int) -> dict[str, int]:
    """The whole history; returns row counts."""
    rng = random.Random(12)  # noqa: S311 - reproducible data
    queue_ids, made = queues_and_templates(queues, templates)
    names = list(db.session.scalars(select(Queue.name).order_by(Queue.id)))
    today = datetime.combine(utcnow().date(), time.min)
    now = utcnow()
    next_id = 1
    for d in range(days - 1, -1, -1):
        day = today - timedelta(days=d)
        tests = tests_for(day, made, running=d == 0, names=names, ids=queue_ids)
        count = per_day if d else int(per_day * (now - day).total_seconds() / 86400)
        rows: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        for row, outcome in day_rows(rng, day, count, queue_ids, tests, next_id):
            rows.append(row)
            outcomes.append(outcome)  # type: ignore[arg-type]
            if len(rows) >= CHUNK:
                write(rows, outcomes, rng)
                rows, outcomes = [], []
        if rows:
            write(rows, outcomes, rng)
        next_id += count
        if d == 0:
            db.session.execute(insert(Job), in_flight(rng, now, queue_ids, tests, next_id))
    # a running instance has flagged every metric already
    RobotState.get().metric_watermark = db.session.scalar(select(func.max(JobMetric.id))) or 0
    db.session.commit()
    return {t.__tablename__: db.session.scalar(select(func.count()).select_from(t)) or 0
            for t in (Job, JobEvent, JobMetric)}

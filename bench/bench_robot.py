"""How long the robot takes on a big instance (run by hand).

    python3 bench/bench_robot.py [--queues 165] [--jobs 1000] [--templates 3]

Writes, on a tmp instance, ``queues`` queues with ``jobs`` recent finished
jobs each (spread over the driving templates, ended within the last 4 h,
~10% failed, a few queues broken) with one metric per job, then times:

* the rules alone on the gathered series (pure Python, per pass);
* the gather query (the newest outcomes of every queue × test: one SQL query per pass);
* the decision step alone on a loaded snapshot (rules, outage guard, holds);
* a whole robot pass (snapshot, decision, compare-and-set writes, summary, commit);
* the band flagging of every metric (first pass: bands built and all
  points flagged) and of a pass with no new metric.

The target: a robot pass under 200 ms at 165 queues (ATLAS's size) × 1,000 jobs.
Rows are bulk-inserted: this measures the robot, not job submission.
"""
from __future__ import annotations

import argparse
import random
import secrets
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from hcflask import create_app
from hcflask.engine import actions
from hcflask.engine.robot.bands import flag_pass
from hcflask.engine.robot.decide import decide
from hcflask.engine.robot.robot import keep_of, load, robot_pass
from hcflask.engine.robot.rules import Settings
from hcflask.engine.robot.snapshot import driving_tests, gather
from hcflask.extensions import db
from hcflask.models import Job, JobMetric, Queue, RobotState, Test, utcnow


def populate(queues: int, jobs: int, templates: int) -> None:
    rng = random.Random(42)  # noqa: S311 - reproducible data, not crypto
    now = utcnow()
    names = [f"q{i:03d}" for i in range(queues)]
    db.session.execute(insert(Queue), [{"name": n, "name_key": n.lower(), "backend": "local", "status": "online",
                                        "autoexclusion": True,
                                        "options": {}, "description": "", "created_at": now} for n in names])
    made = list(db.session.scalars(select(Queue).order_by(Queue.name)))
    tests = []
    for t in range(templates):
        template = actions.save_template({
            "name": f"t{t}", "queues": ["q*"], "autoexclusion": True, "lifetime": 86400,
            "workload": {"script": "echo hc-ok value=1", "metrics": {"value": r"value=(?P<value>[0-9.]+)"}},
        })
        test = Test.from_template(template, start_at=now - timedelta(hours=5))
        test.state, test.host = "running", "bench"
        test.set_queues(made)
        test.started_at = now - timedelta(hours=5)
        db.session.add(test)
        tests.append(test)
    db.session.commit()
    queue_ids = dict(db.session.query(Queue.name, Queue.id).all())
    broken = set(names[:2])
    rows, metrics = [], []
    job_id = 0
    for name in names:
        for j in range(jobs):
            job_id += 1
            test = tests[j % templates]
            failed = (name in broken and j > jobs - 10) or rng.random() < 0.1
            rows.append({"id": job_id, "test_id": test.id, "queue_id": queue_ids[name], "name": f"hc-bench-{job_id}",
                         "state": "failed" if failed else "succeeded", "backend": "local", "native_state": "",
                         "native_reason": "", "failure_reason": "exit 3: bench" if failed else "",
                         "workdir": "", "submit_attempts": 1, "created_at": now, "updated_at": now,
                         "ended_at": now - timedelta(seconds=(jobs - j) * 14_000 / jobs)})
            metrics.append({"job_id": job_id, "name": "value", "value": rng.gauss(100, 5), "unit": "s"})
    db.session.execute(insert(Job), rows)
    db.session.execute(insert(JobMetric), metrics)
    db.session.commit()


def timed(function, repeat: int = 5) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=165)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--templates", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hc-bench-robot-"))
    app = create_app({"INSTANCE_PATH": folder, "SECRET_KEY": secrets.token_hex(16), "DEMO": False,
                      "HOST_NAME": "bench", "SCHEDULER_ENABLED": False})
    table: list[tuple[str, float, str]] = []
    with app.app_context():
        db.create_all()
        start = time.perf_counter()
        populate(args.queues, args.jobs, args.templates)
        print(f"populated {args.queues} queues x {args.jobs} jobs in {time.perf_counter() - start:.1f} s")
        settings = Settings(app.config["ROBOT"])
        now = utcnow()
        since = now - timedelta(hours=4)
        tests = driving_tests(settings, since, now)
        seconds, outcomes = timed(lambda: gather(tests, since, keep_of(settings), now))
        pairs = sum(len(v) for v in outcomes.values())
        table.append(("gather (one query)", seconds, f"{len(outcomes)} queues, {pairs} queue x template series"))
        snap = load(now, settings, RobotState.get())
        seconds, decisions = timed(lambda: decide(snap, settings), repeat=20)
        table.append(("decision step (pure)", seconds, f"{len(decisions.exclude)} would be excluded"))
        seconds, counts = timed(lambda: robot_pass(), repeat=1)
        table.append(("robot pass (excluding)", seconds, f"{counts}"))
        seconds, counts = timed(lambda: robot_pass(), repeat=3)
        table.append(("robot pass (steady)", seconds, f"{counts}"))
        seconds, flags = timed(lambda: flag_pass(), repeat=1)
        table.append(("bands: first pass", seconds, f"{flags} (bands built, all points flagged)"))
        seconds, flags = timed(lambda: flag_pass(), repeat=3)
        table.append(("bands: nothing new", seconds, f"{flags}"))
    print(f"\n{'step':<26} {'seconds':>9}  result")
    for name, secs, note in table:
        print(f"{name:<26} {secs:>9.4f}  {note}")


if __name__ == "__main__":
    main()

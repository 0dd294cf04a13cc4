"""hcflask vs bare ``sbatch`` on the same real single-node Slurm cluster (run by hand, as root).

    python3 bench/bench_slurm.py --n 50 --n 200 [--sched-delay 3]

For each N: N trivial jobs (``echo hc-ok value=42``) by a bare ``sbatch``
loop plus ``squeue`` polling every second, then the same N through hcflask
(a real app on a tmp instance, a slurm queue, a template with N jobs in
flight, the engine's submission and monitor ticks every second) until every
job is judged and stored with its metric.  Prints wall time, jobs/s, the
ratio, and the Slurm commands hcflask issued per job and per monitor tick.

``--sched-delay`` is slurmctld's ``batch_sched_delay``: 3 s is Slurm's
default (about two job starts every 3 s on this node, the pace the issue
measured); 0 makes Slurm as fast as this node allows.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backends"))

from slurm_cluster import SlurmCluster  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from hcflask import create_app  # noqa: E402
from hcflask.engine import actions  # noqa: E402
from hcflask.engine.jobs.monitor import monitor_tick  # noqa: E402
from hcflask.engine.jobs.submission import submission_tick  # noqa: E402
from hcflask.engine.service.core import core_tick  # noqa: E402
from hcflask.extensions import db  # noqa: E402
from hcflask.models import Job, JobMetric  # noqa: E402
from hcflask.states import FINAL_JOB_STATES  # noqa: E402

PAYLOAD = "echo hc-ok value=42"
TICK = 1.0


def bare(cluster: SlurmCluster, n: int, workdir: Path) -> dict[str, float]:
    """A careful human: sbatch in a loop, then one squeue per second until all are gone."""
    workdir.mkdir(parents=True)
    started = time.monotonic()
    ids = [cluster.run("sbatch", "--parsable", f"--job-name=bare-{i}", f"--output={workdir}/%j.out",
                       f"--chdir={workdir}", "--wrap", PAYLOAD).stdout.strip() for i in range(n)]
    polls = 0
    while True:
        polls += 1
        left = cluster.run("squeue", "-h", "-j", ",".join(ids), "-o", "%i", check=False).stdout.split()
        if not left:
            break
        time.sleep(TICK)
    return {"wall": time.monotonic() - started, "commands": n + polls}


def through_hcflask(cluster: SlurmCluster, n: int, instance: Path) -> dict[str, float]:
    os.environ["SLURM_CONF"] = str(cluster.conf)  # queue validation (sbatch --test-only)
    app = create_app({
        "INSTANCE_PATH": instance, "SECRET_KEY": "bench", "DEMO": False, "HOST_NAME": "bench",
        "INSTANCE_NAME": "b" + secrets.token_hex(3), "JOBS_RESULT_GRACE_SECONDS": 30,
        "BACKENDS": {"local": {}, "panda": {}, "slurm": {**cluster.backend_config, "command_timeout": 30}},
    })
    (instance / "jobs").mkdir(parents=True, exist_ok=True)
    with app.app_context():
        db.create_all()
        actions.create_queue("bench", "slurm", {"partition": "debug"})
        template = actions.save_template({
            "name": "bench", "queues": ["bench"], "lifetime": 7200, "jobs_in_flight": n, "max_jobs": n,
            "workload": {"script": PAYLOAD, "resources": {"cores": 1, "walltime": 600},
                         "success": {"must_match": ["hc-ok"]},
                         "metrics": {"value": {"pattern": r"value=(?P<value>[0-9.]+)"}}},
        })
        actions.start_test(template, actor="bench")
        core_tick(app)
        started = time.monotonic()
        ticks = 0
        final = [s.value for s in FINAL_JOB_STATES]
        while True:
            tick_start = time.monotonic()
            submission_tick(app)
            monitor_tick(app)
            ticks += 1
            db.session.expire_all()
            done = db.session.scalar(select(func.count()).select_from(Job).where(Job.state.in_(final)))
            if done >= n:
                break
            time.sleep(max(0.0, TICK - (time.monotonic() - tick_start)))
        wall = time.monotonic() - started
        ok = db.session.scalar(select(func.count()).select_from(Job).where(Job.state == "succeeded"))
        metrics = db.session.scalar(select(func.count()).select_from(JobMetric).where(JobMetric.value == 42))
        calls = app.extensions["hc_backends"]["slurm"].calls
        db.session.remove()
        db.engine.dispose()
    return {"wall": wall, "ticks": ticks, "succeeded": ok, "metrics": metrics, **calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, action="append", help="jobs per run (repeatable; default 50)")
    parser.add_argument("--sched-delay", type=int, default=3, help="slurmctld batch_sched_delay (s)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hc-bench-"))
    cluster = SlurmCluster(root / "slurm", batch_sched_delay=args.sched_delay)
    cluster.start()
    rows = []
    try:
        for n in args.n or [50]:
            b = bare(cluster, n, root / f"bare-{n}")
            cluster.wait_idle()
            h = through_hcflask(cluster, n, root / f"hc-{n}")
            cluster.wait_idle()
            rows.append((n, b, h))
    finally:
        cluster.stop()
    print(f"\nSlurm 1 node, batch_sched_delay={args.sched_delay}s, ticks {TICK:g}s\n")
    print("|   N | bare sbatch s | jobs/s | hcflask s | jobs/s | ratio | judged ok | sbatch/job "
          "| squeue/tick | sacct/tick | Slurm cmds/job (bare) |")
    print("|----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|")
    for n, b, h in rows:
        cmds = sum(h.get(c, 0) for c in ("sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo"))
        print(f"| {n} | {b['wall']:.1f} | {n / b['wall']:.2f} | {h['wall']:.1f} | {n / h['wall']:.2f} "
              f"| {h['wall'] / b['wall']:.2f} | {h['succeeded']}/{n} (metric {h['metrics']}) "
              f"| {h.get('sbatch', 0) / n:.2f} | {h.get('squeue', 0) / h['ticks']:.2f} "
              f"| {h.get('sacct', 0) / h['ticks']:.2f} | {cmds / n:.2f} ({b['commands'] / n:.2f}) |")


if __name__ == "__main__":
    main()

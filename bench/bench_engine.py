"""The engine's own cost per job: trivial local jobs through a real ``hc serve`` (issue 21).

    python bench/bench_engine.py                 # SQLite and PostgreSQL, 200/500/1000 in flight (~5-10 min)
    python bench/bench_engine.py --quick         # both databases, 500 in flight, 1,000 jobs (~2 min)
    python bench/bench_engine.py --db sqlite --in-flight 500 --jobs 2000

The scenario: 20 ``local`` queues (``slots = 10``), one template of trivial
jobs (``echo hc-ok``, must match ``hc-ok``), N jobs in flight (spread over the
queues), ``max_jobs`` per queue so that ``--jobs`` jobs (default: 1,000, or 2 N
if larger) run, submission and monitor ticks every second.  The bench builds
the instance, starts ``hc serve`` on it (2 workers, as an admin would), starts
the test, and waits until every job is judged.

Printed per run (one table row):

* ``jobs/s``: jobs over the time from the first job's creation to the last
  job's judgement (the engine's pace; the service's start-up is left out),
  with the 1-minute load average at the end of the run (the machine is shared:
  wall-clock figures are only as quiet as it was);
* ``CPU ms/job``: utime+stime of the service's processes (gunicorn master
  and workers, from ``/proc/<pid>/stat``) during the run, per job.  The jobs'
  own processes are excluded (they are children: their time is in
  ``cutime``, which is not counted).  This is the main figure: a busy machine
  slows it down far less than it slows jobs/s;
* ``net ms/job``: the same less what the service spends when it has nothing to
  do (measured for 5 s before each run: its core tick, heartbeats, the web
  workers), times the run's duration: the cost the jobs add.  On a busy machine
  the run lasts longer and the idle part grows, so this is the fairer figure;
* ``db ms/job``: the PostgreSQL server's CPU (postmaster and its backends),
  less its idle pace, per job (SQLite's work is inside the service's figure);
* ``sub p50/p95``, ``mon p50/p95``: the submission and monitor ticks'
  durations in ms, from the service's ``[scheduler] log_ticks`` lines;
* ``busy``: "tick still busy" warnings the scheduler logged during the run;
* ``bare s``: the same number of job-sized shell processes (``bash -c 'echo
  hc-ok > file'``), started with the same concurrency (the queues' slots),
  timed in the same run: the local backend's physical limit.

Goals (issue 21): >= 150 jobs/s at 500 in flight, <= 3 CPU ms per job, every
tick's p95 under its 1 s interval at 1,000 in flight, on both databases.

The instances (and the throw-away PostgreSQL) live in ``$TMPDIR``.  A job
creates about fifteen files (work dir, wrapper, marker, pipes, output,
result), so the file system's cost of creating one shows in every column: on
the development machine, after a day of test runs, a file created under
``/tmp`` cost 0.3-1 ms of CPU against 0.04 ms in a fresh directory of the same
ext4 file system.  ``TMPDIR=/dev/shm`` measures the engine rather than the
disk's history; say which one a table used.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.postgres import PostgresServer, missing  # noqa: E402
from tests.service import Served, write_config  # noqa: E402

QUEUES = 20
SLOTS = 10
PAYLOAD = "echo hc-ok"
TICK_RE = re.compile(r"tick (submission|monitor) (\d+\.\d+) s")
BUSY_RE = re.compile(r"(submission|monitor) tick still busy")
#: seconds the idle service is measured before each run
IDLE = 5.0
FINAL = ("succeeded", "failed", "cancelled", "lost", "not_applicable")


@dataclass
class Result:
    db: str
    in_flight: int
    jobs: int
    succeeded: int
    seconds: float
    cpu: float
    net: float
    db_cpu: float
    sub: list[float]
    mon: list[float]
    busy: int
    bare: float
    load: float

    def row(self) -> str:
        per = 1000 / max(self.jobs, 1)
        db_cpu = f"{per * self.db_cpu:6.2f}" if self.db == "postgres" else "     -"
        return (f"| {self.db:<8} | {self.in_flight:>5} | {self.jobs:>5} | {self.succeeded:>5} "
                f"| {self.jobs / self.seconds:>6.1f} | {self.load:>4.1f} | {per * self.cpu:>6.2f} "
                f"| {per * self.net:>6.2f} | {db_cpu} "
                f"| {pct(self.sub, 50):>5.0f} / {pct(self.sub, 95):>5.0f} | {pct(self.mon, 50):>5.0f} / "
                f"{pct(self.mon, 95):>5.0f} | {self.busy:>4} | {self.seconds:>6.1f} | {self.bare:>6.2f} |")


HEADER = ("| db       |    N  |  jobs |    ok | jobs/s | load | CPU ms/job | net ms/job | db ms/job "
          "| sub p50 / p95 ms | mon p50 / p95 ms | busy | engine s | bare s |\n"
          "|----------|------:|------:|------:|-------:|-----:|-------:|-------:|-------:|------:|------:|-----:"
          "|-------:|-------:|")


def pct(values: list[float], p: int) -> float:
    """The p-th percentile in ms (nearest rank); 0 without values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def cpu_seconds(master: int) -> float:
    """utime + stime of ``master`` and its direct children: the gunicorn workers (or PostgreSQL's
    backends).  The local jobs are children of the scheduler worker, not of the master, so they
    are never included, and ``cutime`` (where the workers' reaped jobs would add up) is not read."""
    if master <= 0:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == master or ppid == master:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def bare(n: int, concurrency: int, folder: Path) -> float:
    """``n`` job-sized shell processes, ``concurrency`` at a time: seconds until all ended."""
    folder.mkdir(parents=True, exist_ok=True)
    running: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    for i in range(n):
        while len(running) >= concurrency:
            running = [p for p in running if p.poll() is None]
            if len(running) >= concurrency:
                time.sleep(0.001)
        running.append(subprocess.Popen(["/bin/bash", "-c", f"{PAYLOAD} > {folder}/{i}.out"]))  # noqa: S603
    for proc in running:
        proc.wait()
    return time.monotonic() - started


def prepare(instance: Path, url: str, in_flight: int, jobs: int) -> None:
    """The queues and the template, written before the service starts (its start-up is not measured)."""
    from hcflask import create_app
    from hcflask.engine import actions
    from hcflask.extensions import db

    app = create_app({"INSTANCE_PATH": instance, "DATABASE_URL": url, "DEMO": False, "SCHEDULER_ENABLED": False})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(directory=app.extensions["migrate"].directory)
        for i in range(QUEUES):
            actions.create_queue(f"q{i:02d}", "local", {"slots": SLOTS})
        actions.save_template({
            "name": "trivial", "queues": ["q*"], "lifetime": 7200,
            "jobs_in_flight": -(-in_flight // QUEUES), "max_jobs": -(-jobs // QUEUES),
            "workload": {"script": PAYLOAD, "resources": {"cores": 1, "walltime": 600},
                         "success": {"must_match": ["hc-ok"]}},
        })
        db.session.remove()
        db.engine.dispose()


def start_test(instance: Path, url: str) -> None:
    from hcflask import create_app
    from hcflask.engine import actions
    from hcflask.extensions import db
    from hcflask.models import Template

    app = create_app({"INSTANCE_PATH": instance, "DATABASE_URL": url, "DEMO": False, "SCHEDULER_ENABLED": False})
    with app.app_context():
        template = db.session.query(Template).filter_by(name="trivial").one()
        actions.start_test(template, actor="bench")
        db.session.remove()
        db.engine.dispose()


def progress(url: str, instance: Path) -> tuple[int, int, float]:
    """(jobs judged, jobs succeeded, seconds from the first creation to the last judgement)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url or f"sqlite:///{instance / 'hc.sqlite'}")
    try:
        with engine.connect() as conn:
            done, ok, first, last = conn.execute(sa.text(
                "SELECT count(*) FILTER (WHERE state IN :final), count(*) FILTER (WHERE state = 'succeeded'), "
                "min(created_at), max(judged_at) FROM job").bindparams(sa.bindparam("final", expanding=True)),
                {"final": list(FINAL)}).one()
    finally:
        engine.dispose()
    if isinstance(first, str):
        from datetime import datetime
        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last) if last else None
    return done, ok, (last - first).total_seconds() if first and last else 0.0


def run(db: str, url: str, folder: Path, in_flight: int, jobs: int, timeout: float, postmaster: int) -> Result:
    instance = folder / "instance"
    write_config(instance, host_name="bench", extra_top=f'database_url = "{url}"' if url else "")
    text = (instance / "hc.toml").read_text().replace("[scheduler]\n", "[scheduler]\nlog_ticks = true\n", 1)
    (instance / "hc.toml").write_text(text)
    prepare(instance, url, in_flight, jobs)
    served = Served(instance, workers=2).start()
    try:
        served.wait(lambda: served.health()[1].get("scheduler_in_this_process") is not None, "hc serve", 60)
        served.wait(lambda: served.schedulers(), "the scheduler", 60)
        time.sleep(1)
        idle0, db0 = cpu_seconds(served.pid), cpu_seconds(postmaster)
        time.sleep(IDLE)  # the service's own pace with nothing to do (its core tick, heartbeats, the web)
        cpu0, db1 = cpu_seconds(served.pid), cpu_seconds(postmaster)
        idle = (cpu0 - idle0) / IDLE
        log_start = len(served.text())
        began = time.monotonic()
        start_test(instance, url)
        deadline = time.monotonic() + timeout
        done = ok = 0
        seconds = 0.0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            done, ok, seconds = progress(url, instance)
            if done >= jobs:
                break
        cpu = cpu_seconds(served.pid) - cpu0
        db_cpu = cpu_seconds(postmaster) - db1 - (db1 - db0) / IDLE * (time.monotonic() - began)
        wall = time.monotonic() - began
        load = os.getloadavg()[0]
        log = served.text()[log_start:]
    finally:
        served.stop()
    ticks: dict[str, list[float]] = {"submission": [], "monitor": []}
    for kind, value in TICK_RE.findall(log):
        ticks[kind].append(float(value))
    if done < jobs:
        print(f"  {db} N={in_flight}: only {done}/{jobs} judged within {timeout:.0f} s; see {served.log}")
    took = bare(jobs, min(in_flight, QUEUES * SLOTS), folder / "bare")
    return Result(db, in_flight, done, ok, seconds or float("nan"), cpu, cpu - idle * wall, db_cpu,
                  ticks["submission"], ticks["monitor"], len(BUSY_RE.findall(log)), took, load)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("--db", default="sqlite,postgres", help="databases to run on (default: sqlite,postgres)")
    parser.add_argument("--in-flight", default="200,500,1000",
                        help="jobs in flight over the 20 queues, comma-separated (default: 200,500,1000)")
    parser.add_argument("--jobs", type=int, default=0,
                        help="jobs per run (default: 1000, or twice the jobs in flight if more)")
    parser.add_argument("--quick", action="store_true", help="500 in flight and 1,000 jobs on each database")
    parser.add_argument("--timeout", type=float, default=240, help="seconds a run may take (default: 240)")
    parser.add_argument("--keep", action="store_true", help="keep the instance folders (and the service logs)")
    args = parser.parse_args()
    sizes = [500] if args.quick else [int(n) for n in args.in_flight.split(",")]
    root = Path(tempfile.mkdtemp(prefix="hc-bench-engine-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user and must reach its folder
    results: list[Result] = []
    print(f"{QUEUES} local queues x {SLOTS} slots, '{PAYLOAD}', 1 s ticks; folders in {root}", flush=True)
    try:
        for db in args.db.split(","):
            server = None
            if db == "postgres":
                if missing():
                    print(f"postgres: skipped ({missing()})")
                    continue
                server = PostgresServer(root / "pg")
                (root / "pg").mkdir()
                server.start()
            try:
                for n in sizes:
                    jobs = args.jobs or (1000 if args.quick else max(1000, 2 * n))
                    url = server.create_database() if server else ""
                    postmaster = int((root / "pg" / "data" / "postmaster.pid").read_text().split()[0]) if server else 0
                    result = run(db, url, root / f"{db}-{n}-{secrets.token_hex(2)}", n, jobs, args.timeout,
                                 postmaster)
                    results.append(result)
                    print(HEADER.splitlines()[0] if len(results) == 1 else "", end="\n" if len(results) == 1 else "")
                    print(result.row(), flush=True)
            finally:
                if server is not None:
                    server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("\n" + HEADER)
    for result in results:
        print(result.row())
    sub95 = max((pct(r.sub, 95) for r in results), default=0)
    print(f"\nmedian CPU ms/job {statistics.median(1000 * r.cpu / r.jobs for r in results if r.jobs):.2f}; "
          f"worst tick p95 {sub95:.0f} ms (submission); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

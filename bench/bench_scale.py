"""A month at HammerCloud scale: every page, served for real (run by hand).

    python3 bench/bench_scale.py [--days 30] [--per-day 61000] [--queues 165] [--db sqlite,postgres]
                                 [--keep DIR]

For each database: a fresh instance is migrated, the month is generated
(bench/scale_data.py: bulk inserts, COPY on PostgreSQL, plus the project's
rollup writer; about 4 minutes a month on either), then
``hc serve --no-scheduler`` (real gunicorn, 2 workers) serves it and each
page and endpoint of issue 12's table is fetched ``--requests`` times.
Printed: p50 / p95 / max in ms per URL (the first /overview separately),
the largest worker RSS, and in-process timings of a robot pass, a core
tick and a retention tick.  PostgreSQL is a private server
(tests/postgres.py).  ``--keep DIR`` keeps the month (and the server's data)
in DIR and measures it again next time without generating it.  Goals:
p95 < 100 ms, /metrics < 50 ms, RSS < 200 MB, robot pass < 200 ms.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.scale_data import generate  # noqa: E402
from hcflask import create_app  # noqa: E402
from hcflask.engine.data.retention import retention_tick  # noqa: E402
from hcflask.engine.robot.robot import robot_pass  # noqa: E402
from hcflask.engine.service.core import core_tick  # noqa: E402
from hcflask.extensions import db  # noqa: E402
from hcflask.models import Queue, Test  # noqa: E402


def urls(running_test: int, queue: str) -> list[str]:
    return ["/overview", "/metrics", "/robot", f"/tests/{running_test}", "/tests", "/api/v1/tests",
            f"/api/v1/jobs?queue={queue}", "/api/v1/jobs?per_page=500", "/", "/api/v1/overview/availability",
            "/api/v1/overview/heatmap", "/api/v1/robot/tiles"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(base: str, url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(base + url, timeout=300) as response:  # noqa: S310 - our own server
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return (time.perf_counter() - start) * 1000


def rss_mb(master: int) -> float:
    """The largest resident set of the gunicorn workers (children of ``master``)."""
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(master)], capture_output=True, text=True, check=False)
    return max((int(v) for v in out.stdout.split()), default=0) / 1024


def serve(folder: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    """``hc serve`` on the instance; its log goes to ``serve.log`` there (kept when a page fails)."""
    port = free_port()
    env = {**os.environ, "HC_INSTANCE": str(folder), "HC_DATABASE_URL": url, "HC_DEMO": "false",
           "HC_SCHEDULER_ENABLED": "false", "HC_HOST_NAME": "bench"}
    hc = shutil.which("hc") or str(Path(sys.executable).parent / "hc")
    proc = subprocess.Popen([hc, "serve", "--no-scheduler", "--workers", "2", "--bind", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=(folder / "serve.log").open("wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            fetch(base, "/healthz")
            return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("hc serve did not answer within 60 s")


def calibration() -> str:
    """How busy the machine is: load average and a fixed Python loop (about 0.4 s when idle)."""
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return f"load average {os.getloadavg()[0]:.1f}, 10M-step loop {time.perf_counter() - start:.2f} s"


def timed(function: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(url: str, folder: Path, args: argparse.Namespace) -> bool:
    """Generate the month into ``folder`` (unless it holds a kept one), then measure; False if a page failed."""
    marker = folder / "generated.txt"
    if not marker.exists():
        (folder / "hc.toml").write_text(f'secret_key = "{secrets.token_hex(16)}"\ndemo = false\n')
    app = create_app({"INSTANCE_PATH": folder, "DATABASE_URL": url, "DEMO": False, "HOST_NAME": "bench",
                      "SCHEDULER_ENABLED": False})
    rows = Rows()
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)  # a kept month gets the newest schema too
        if marker.exists():
            rows.append(("generate", f"kept: {marker.read_text().strip()}"))
        else:
            start = time.perf_counter()
            counts = generate(args.days, args.per_day, args.queues, args.templates)
            rows.append(("generate", f"{time.perf_counter() - start:.0f} s: {counts}"))
            if url:  # what autovacuum does on a month-old server: the planner's statistics, visibility maps
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE")
            marker.write_text(f"{args.days} days, {counts}, on {time.strftime('%Y-%m-%d %H:%M')}\n")
        # the newest running test (a kept month past its last midnight has none: the newest test)
        running = db.session.scalar(select(Test.id).order_by((Test.state == "running").desc(), Test.id.desc()))
        queue = db.session.scalar(select(Queue.name).order_by(Queue.name))
        rows.append(("robot pass", f"{timed(robot_pass):.0f} ms"))
        rows.append(("core tick", f"{timed(lambda: core_tick(app)):.0f} ms"))
        rows.append(("retention tick (nothing old)", f"{timed(lambda: retention_tick(app)):.0f} ms"))
        db.session.remove()
        db.engine.dispose()
    if not url:
        rows.append(("database size", f"{(folder / 'hc.sqlite').stat().st_size / 2**20:.0f} MB"))
    rows.append(("machine", calibration()))
    proc, base = serve(folder, url)
    failed = False
    try:
        rows.append(("first /overview", f"{fetch(base, '/overview'):.0f} ms"))
        for page in urls(running or 0, queue or ""):
            times = sorted(fetch(base, page) for _ in range(args.requests))
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            rows.append((page, f"p50 {statistics.median(times):6.1f}  p95 {p95:6.1f}  max {times[-1]:6.1f} ms"))
        rows.append(("worker RSS (max)", f"{rss_mb(proc.pid):.0f} MB"))
    except OSError as exc:
        failed = True
        print(f"{exc}: see {folder / 'serve.log'}", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    return not failed


class Rows(list[tuple[str, str]]):
    """Each row printed as soon as it is measured (a long run shows its progress)."""

    def append(self, row: tuple[str, str]) -> None:
        super().append(row)
        print(f"{row[0]:<34} {row[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=61_000)
    parser.add_argument("--queues", type=int, default=165)
    parser.add_argument("--templates", type=int, default=6)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated month in DIR and reuse it next time "
                        "(the sizes given must match; delete DIR to start again)")
    args = parser.parse_args()
    for kind in args.db.split(","):
        print(f"\n## {kind}: {args.days} days x {args.per_day} jobs/day, {args.queues} queues, "
              f"{args.templates} templates", flush=True)
        folder = workspace(kind, args.keep)
        if kind == "postgres":
            from tests.postgres import PostgresServer, missing

            if missing():
                print(f"postgres: skipped ({missing()})")
                continue
            server = PostgresServer(folder / "server")
            (folder / "server").mkdir(exist_ok=True)
            server.start()
            try:
                kept = (folder / "instance" / "generated.txt").exists()
                url = server.url("hc_bench") if kept else server.create_database("hc_bench")
                passed = run(url, folder / "instance", args)
            finally:
                server.stop()
        else:
            passed = run("", folder / "instance", args)
        if passed and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def workspace(kind: str, keep: str | None) -> Path:
    """A fresh folder, or ``keep``/kind (emptied first if its month was never finished)."""
    if not keep:
        folder = Path(tempfile.mkdtemp(prefix=f"hc-bench-scale-{kind}-"))
    else:
        folder = Path(keep).resolve() / kind
        if not (folder / "instance" / "generated.txt").exists():
            shutil.rmtree(folder, ignore_errors=True)
    (folder / "instance").mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # PostgreSQL runs as its own user (as root: postgres) and must reach server/
    return folder


if __name__ == "__main__":
    main()

"""How long an admin waits for ``hc``: the commands of issue 25's goal, timed with hyperfine.

A command line tool is judged by its start-up: every ``hc`` run is a fresh
Python process, so what it imports is most of what it costs.  This script
builds a demo instance (``hc init --demo``) with a day and a half of history
(``bench/scale_data.py``: 2 days x ``--per-day`` jobs over 10 queues, two
templates), then runs each command under ``hyperfine`` (Debian package
``hyperfine``) and prints one table: mean, min and max wall time, the goal, and
whether the mean meets it.

Run from a checkout: ``python bench/bench_cli.py`` (``--hc PATH`` to time
another installation's ``hc``, ``--runs N``).  The table goes in
docs/operations.md ("How fast the hc command is").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (label, arguments after ``hc``, goal in seconds); ``{test}`` is a finished test's id
COMMANDS: list[tuple[str, list[str], float]] = [
    ("hc --help", ["--help"], 0.3),
    ("hc --version", ["--version"], 0.3),
    ("hc queue list", ["queue", "list"], 0.5),
    ("hc test list", ["test", "list"], 0.5),
    ("hc test report ID", ["test", "report", "{test}"], 0.5),
]


def build(instance: Path, hc: str, per_day: int) -> int:
    """A demo instance with history; returns the id of a finished test to report on."""
    env = {**os.environ, "HC_INSTANCE": str(instance)}
    subprocess.run([hc, "init", "--demo"], env=env, check=True, capture_output=True, text=True, timeout=300)
    from sqlalchemy import select

    from bench.scale_data import generate
    from hcflask import create_app
    from hcflask.extensions import db
    from hcflask.models import Test

    app = create_app({"INSTANCE_PATH": instance})
    with app.app_context():
        generate(days=2, per_day=per_day, queues=10, templates=2)
        test_id = db.session.scalar(select(Test.id).where(Test.state == "completed").order_by(Test.id.desc()))
        db.session.remove()
    assert test_id is not None
    return int(test_id)


def measure(hc: str, instance: Path, test_id: int, runs: int,
            warmup: int = 2) -> list[tuple[str, float, float, float, float, float]]:
    """hyperfine's mean, min and max wall time and mean CPU time (user + system) of every command, in
    seconds: on a busy machine the wall time includes waiting for a core, the CPU time does not."""
    rows = []
    env = {**os.environ, "HC_INSTANCE": str(instance)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, args, goal in COMMANDS:
            argv = [hc, *(a.format(test=test_id) for a in args)]
            check = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
            if check.returncode != 0:
                raise SystemExit(f"{label} failed ({check.returncode}): {check.stderr.strip()}")
            out = Path(tmp) / "result.json"
            subprocess.run(["hyperfine", "--warmup", str(warmup), "--runs", str(runs), "--style", "none", "-N",
                            "--export-json", str(out), " ".join(argv)], env=env, check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
            result = json.loads(out.read_text())["results"][0]
            rows.append((label, result["mean"], result["min"], result["max"], result["user"] + result["system"], goal))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hc", default=str(Path(sys.executable).parent / "hc"), help="the hc to time")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--per-day", type=int, default=2000, help="jobs per day of history")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is not installed (Debian: apt-get install hyperfine)")
    base = Path(tempfile.mkdtemp(prefix="hc-bench-cli-"))
    try:
        instance = base / "instance"
        test_id = build(instance, args.hc, args.per_day)
        rows = measure(args.hc, instance, test_id, args.runs, args.warmup)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'command':<20} {'mean s':>7} {'min s':>7} {'max s':>7} {'cpu s':>7} {'goal s':>7}  meets")
    for label, mean, low, high, cpu, goal in rows:
        meets = "yes" if mean <= goal else "NO"
        print(f"{label:<20} {mean:7.3f} {low:7.3f} {high:7.3f} {cpu:7.3f} {goal:7.1f}  {meets}")
    print(f"({args.runs} runs each after {args.warmup} warm-ups, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

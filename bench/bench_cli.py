"""How long an admin waits for ``hc``: the commands of issue 25's goal, timed with hyperfine.

A command line tool is judged by its start-up: every ``hc`` run is a fresh
Python process, so what it imports is most of what it costs.  This script
builds a demo instance (``hc init --demo``) with a day and a half of history
(``bench/scale_data.py``: 2 days x ``--per-day`` jobs over 10 queues, two
templates), then runs each command under ``hyperfine`` (Debian package
``hyperfine``) and prints one table: mean, min and max wall time, the goal, and
whether the mean meets it.  Every ``hc`` runs with its modules' bytecode cached
(``PYTHONPYCACHEPREFIX`` in a temporary folder, written by the first run), as
an installed ``hc`` has it.

Run from a checkout: ``python bench/bench_cli.py`` (``--hc PATH`` to time
another installation's ``hc``, ``--runs N``).  ``--baseline PATH`` times a
second ``hc`` (an older version) too, each command right after the other's, so
both see the same load, and ``--markdown`` prints the table of
docs/operations.md ("How fast the hc command is") instead of plain text.
``--instructions`` also counts the instructions of one run of each command
(Debian package ``valgrind``): on a machine shared with other work, the times
move with its load, the count does not.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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


#: one command's figures: label, mean, min and max wall time, mean CPU time (s), goal (s)
Row = tuple[str, float, float, float, float, float]


def instructions(argv: list[str], env: dict[str, str]) -> float:
    """Millions of instructions one run of ``argv`` executes (valgrind's cachegrind, no cache
    simulation; the hash seed fixed): unlike its time, the same on a busy machine as on an idle one."""
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                           *argv], env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
                          timeout=1200, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no instruction count: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", "")) / 1e6


def measure(hcs: list[str], instance: Path, test_id: int, runs: int, warmup: int = 2,
            count: bool = False) -> tuple[list[list[Row]], list[list[float]]]:
    """For each ``hc`` of ``hcs``, hyperfine's mean, min and max wall time and mean CPU time (user +
    system) of every command, in seconds: on a busy machine the wall time includes waiting for a
    core, the CPU time does not.  Each command is timed for every ``hc`` in turn, so they share
    the machine's load.  With ``count``, also the millions of instructions of each command
    (:func:`instructions`)."""
    rows: list[list[Row]] = [[] for _ in hcs]
    counts: list[list[float]] = [[] for _ in hcs]
    with tempfile.TemporaryDirectory() as tmp:
        # the modules' bytecode cached, as an installed hc has it (pip compiles it, a checkout's
        # first run writes it): in a temporary folder, so neither checkout is written to, and
        # whatever PYTHONDONTWRITEBYTECODE says (set, every run compiled hcflask's sources again)
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
               "HC_INSTANCE": str(instance), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        for label, args, goal in COMMANDS:
            for hc, out_rows, out_counts in zip(hcs, rows, counts, strict=True):
                argv = [hc, *(a.format(test=test_id) for a in args)]
                check = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
                if check.returncode != 0:
                    raise SystemExit(f"{hc}: {label} failed ({check.returncode}): {check.stderr.strip()}")
                out = Path(tmp) / "result.json"
                subprocess.run(["hyperfine", "--warmup", str(warmup), "--runs", str(runs), "--style", "none", "-N",
                                "--export-json", str(out), " ".join(argv)], env=env, check=True,
                               stdout=subprocess.DEVNULL, timeout=1200)
                result = json.loads(out.read_text())["results"][0]
                out_rows.append((label, result["mean"], result["min"], result["max"],
                                 result["user"] + result["system"], goal))
                if count:
                    out_counts.append(instructions(argv, env))
    return rows, counts


def text_table(rows: list[Row]) -> None:
    print(f"{'command':<20} {'mean s':>7} {'min s':>7} {'max s':>7} {'cpu s':>7} {'goal s':>7}  meets")
    for label, mean, low, high, cpu, goal in rows:
        meets = "yes" if mean <= goal else "NO"
        print(f"{label:<20} {mean:7.3f} {low:7.3f} {high:7.3f} {cpu:7.3f} {goal:7.1f}  {meets}")


def markdown_table(after: list[Row], before: list[Row] | None, counts: list[list[float]]) -> None:
    """The table of docs/operations.md: wall time as mean (min–max), the CPU time and, where
    counted, the instructions."""
    counted = all(counts)

    def cells(row: Row, i: int, side: int) -> str:
        return (f"{row[1]:.3f} s ({row[2]:.3f}–{row[3]:.3f}) | {row[4]:.3f} s"
                + (f" | {counts[side][i]:,.0f} M" if counted else ""))

    def heads(side: str) -> str:
        return f"{side}: mean (min–max) | {side}: CPU | " + (f"{side}: instructions | " if counted else "")

    head = "| command | goal | " + (heads("before") if before else "") + heads("after")
    print(head.rstrip())
    print("|---" * (head.count("|") - 1) + "|")
    for i, row in enumerate(after):
        print(f"| `{row[0]}` | {row[5]:.1f} s | " + (cells(before[i], i, 1) + " | " if before else "")
              + cells(row, i, 0) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hc", default=str(Path(sys.executable).parent / "hc"), help="the hc to time")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--per-day", type=int, default=2000, help="jobs per day of history")
    parser.add_argument("--baseline", help="an older hc to time too, for a before and after")
    parser.add_argument("--markdown", action="store_true", help="print the table of docs/operations.md")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each command's instructions once (valgrind; load-independent)")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is not installed (Debian: apt-get install hyperfine)")
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    base = Path(tempfile.mkdtemp(prefix="hc-bench-cli-"))
    try:
        instance = base / "instance"
        test_id = build(instance, args.hc, args.per_day)
        hcs = [args.hc, *([args.baseline] if args.baseline else [])]
        (after, *before), counts = measure(hcs, instance, test_id, args.runs, args.warmup, args.instructions)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.markdown:
        markdown_table(after, before[0] if before else None, counts)
    elif before:
        print(f"before ({args.baseline}):")
        text_table(before[0])
        print(f"\nafter ({args.hc}):")
        text_table(after)
    else:
        text_table(after)
    if args.instructions and not args.markdown:
        for hc, found in zip(hcs, counts, strict=True):
            print(f"instructions (millions), {hc}: " + ", ".join(
                f"{label} {n:,.0f}" for (label, _, _), n in zip(COMMANDS, found, strict=True)))
    print(f"({args.runs} runs each after {args.warmup} warm-ups, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

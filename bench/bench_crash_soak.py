"""The kill -9 soak: many rounds of ``kill -9`` in a submission burst to real Slurm (run by hand, as root).

    python3 bench/bench_crash_soak.py [--kills 50] [--repeat 1]

The suite's ``tests/backends/test_slurm_crash.py::test_kill9_in_bursts_jobs_slurm_never_saw_are_submitted``
kills the real ``hc serve`` 10 times while its (slowed) sbatch runs, enough to hit every point of
the call; this script runs that same test with ``HC_TEST_KILLS`` rounds (50 by default, three jobs
per round), ``--repeat`` times, so a rare window gets its chances without costing CI four minutes.
It starts its own single-node Slurm cluster (the test's fixture: ``.ci/install-slurm.sh``, root)
and prints one table: kills landed, rows, Slurm jobs, adopted by name, proven absent and
submitted, doubled, lost, and the wall time of each run.  Any failed run fails the script.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/backends/test_slurm_crash.py::test_kill9_in_bursts_jobs_slurm_never_saw_are_submitted"
#: the summary line the test prints
LINE = re.compile(r"(?P<kills>\d+) kill -9 in submission bursts; (?P<rows>\d+) rows, (?P<slurm>\d+) Slurm jobs; "
                  r"after restarts (?P<adopted>\d+) adopted by name, (?P<resubmitted>\d+) proven absent and "
                  r"submitted; final (?P<final>\{.*?\}); doubled (?P<doubled>\d+)")


def run(kills: int) -> tuple[dict[str, str], float, bool, str]:
    """One pytest run of the soak; its summary figures, wall time, outcome and output."""
    env = {**os.environ, "HC_TEST_KILLS": str(kills)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", TEST, "-s", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    found = LINE.search(done.stdout)
    return (found.groupdict() if found else {}), wall, done.returncode == 0, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="kill -9 rounds per run (the suite runs 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each on a fresh instance")
    args = parser.parse_args()
    if args.kills < 1 or args.repeat < 1:
        parser.error("--kills and --repeat must be at least 1")
    print("| run | kills landed | rows | Slurm jobs | adopted | proven absent, submitted | doubled | final |"
          " wall (s) | result |\n|--:|--:|--:|--:|--:|--:|--:|---|--:|---|")
    failed = []
    for number in range(1, args.repeat + 1):
        figures, wall, ok, output = run(args.kills)
        f = {k: figures.get(k, "?") for k in ("kills", "rows", "slurm", "adopted", "resubmitted", "doubled", "final")}
        print(f"| {number} | {f['kills']}/{args.kills} | {f['rows']} | {f['slurm']} | {f['adopted']} | "
              f"{f['resubmitted']} | {f['doubled']} | {f['final']} | {wall:.0f} | {'ok' if ok else 'FAILED'} |",
              flush=True)
        if not ok:
            failed.append(output)
    for output in failed:
        print("\n" + output[-6000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The engine benchmark itself keeps working (issue 21): a tiny run through a real ``hc serve``
on SQLite judges every job, and its row has CPU and tick figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_engine_benchmark_judges_every_job_and_reports_its_figures() -> None:
    done = subprocess.run([sys.executable, "bench/bench_engine.py", "--db", "sqlite", "--in-flight", "20",
                           "--jobs", "40"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| sqlite")]
    assert rows, done.stdout
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    assert cells[1:4] == ["20", "40", "40"], cells  # in flight, judged, succeeded
    assert float(cells[6]) > 0, "the service's CPU per job"
    assert re.fullmatch(r"\d+ / +\d+", cells[9]) and re.fullmatch(r"\d+ / +\d+", cells[10]), "tick p50 / p95"

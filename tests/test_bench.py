"""The scale benchmark itself keeps working (a tiny month, so it runs in seconds):
it generates through the rollup writer, serves every page of issue 12's table
from real gunicorn on SQLite and PostgreSQL, and ``--keep`` measures a kept
month again without generating it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import missing

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "bench/bench_scale.py", "--days", "2", "--per-day", "400", "--queues", "4",
                           "--templates", "2", "--requests", "3", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def keep() -> Iterator[Path]:
    """Not under pytest's private tmp folder: the postgres user must reach the server's data."""
    folder = Path(tempfile.mkdtemp(prefix="hc-bench-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_the_benchmark_measures_every_page_and_reuses_a_kept_month(keep: Path) -> None:
    kinds = "sqlite" if missing() and not os.environ.get("CI") else "sqlite,postgres"
    first = bench("--db", kinds, "--keep", str(keep))
    for kind in kinds.split(","):
        section = first.split(f"## {kind}:")[1].split("##")[0]
        assert re.search(r"generate +\d+ s: \{'job': [1-9]\d+,", section), section
        for page in ("/overview", "/metrics", "/robot", "/tests", "/api/v1/jobs?per_page=500", "/"):
            assert re.search(rf"^{re.escape(page)} +p50 +[\d.]+ +p95 +[\d.]+ +max", section, re.M), (page, section)
        assert re.search(r"robot pass +\d+ ms", section) and re.search(r"worker RSS \(max\) +\d+ MB", section)
    again = bench("--db", "sqlite", "--keep", str(keep))
    assert "generate                           kept: 2 days" in again and "first /overview" in again

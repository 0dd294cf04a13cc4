"""bench/bench_cli.py keeps working: it builds its demo instance with history, times every command
of issue 25's goal with the real hyperfine and prints one row each (the figures themselves are
the benchmark's business, docs/operations.md, never asserted here)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_cli_benchmark_times_every_command() -> None:
    if shutil.which("hyperfine") is None:
        if os.environ.get("CI"):
            pytest.fail("hyperfine is not installed: .ci/install-hyperfine.sh")
        pytest.skip("hyperfine is not installed (Debian package; .ci/install-hyperfine.sh)")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "bench/bench_cli.py", "--runs", "2", "--warmup", "0", "--per-day", "40"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("hc --help", "hc --version", "hc queue list", "hc test list", "hc test report ID"):
        row = rf"^{re.escape(label)} +(\d+\.\d{{3}} +){{4}}0\.[35] +(yes|NO)$"
        assert re.search(row, done.stdout, re.M), done.stdout

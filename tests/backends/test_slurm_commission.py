"""``hc commission`` on a partition of the real single-node Slurm cluster, end to end."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from slurm_cluster import SlurmCluster
from sqlalchemy import select

from hcflask.cli.catalog import catalog_group, commission_command
from hcflask.extensions import db
from hcflask.models import Job
from tests.conftest import make_app
from tests.factories import make_queue

pytestmark = pytest.mark.slurm


@pytest.fixture
def app(slurm: SlurmCluster, tmp_path: Path) -> Iterator[Flask]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", str(slurm.conf))
    app = make_app(tmp_path / "instance", JOBS_RESULT_GRACE_SECONDS=5,
                   BACKENDS={"local": {}, "slurm": slurm.backend_config, "panda": {}})
    with app.app_context():
        make_queue("slurm-debug", "slurm", partition="debug")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    mp.undo()


def _commission(app: Flask, *args: str) -> tuple[int, dict[str, Any], float, str]:
    clock = time.monotonic()
    result = app.test_cli_runner().invoke(commission_command, ["slurm-debug", "--json", "--timeout", "600", *args])
    seconds = time.monotonic() - clock
    start = result.stdout.find("{")
    return result.exit_code, (json.loads(result.stdout[start:]) if start >= 0 else {}), seconds, result.output


def test_commission_a_slurm_partition(app: Flask, endpoint: str, tmp_path: Path, mpi_installed: None) -> None:
    """Every probe through sbatch: pass or not applicable with metrics, mpi with two tasks via srun."""
    assert app.test_cli_runner().invoke(
        catalog_group, ["install", "network", "--set", f"ENDPOINTS={endpoint}"]).exit_code == 0
    html = tmp_path / "c.html"
    code, data, seconds, output = _commission(app, "--html", str(html))
    assert code == 0, output
    verdicts = {p["probe"]: p["verdict"] for p in data["probes"]}
    absent = {"gpu", "cvmfs", "container", "data-access"}
    assert verdicts == {n: "not applicable" if n in absent else "pass" for n in verdicts}, output
    mpi = next(p for p in data["probes"] if p["probe"] == "mpi")
    assert mpi["facts"]["launcher"] == "srun --mpi=pmix"
    assert {m["metric"] for m in mpi["metrics"] if m["summary"]} == {"latency_us", "bandwidth_mb_s"}
    with app.app_context():
        job = db.session.scalar(select(Job).where(Job.test_id == mpi["test"]))
        out = (Path(job.workdir) / "stdout").read_text()
        assert "hello from rank 0 of 2" in out and "hello from rank 1 of 2" in out
        assert job.backend == "slurm" and job.backend_id
    node = next(p for p in data["probes"] if p["probe"] == "node")
    assert {m["metric"]: m["summary"]["median"] for m in node["metrics"]}["walltime_given_s"] == 120
    assert html.exists()
    medians = {p["probe"]: {m["metric"]: m["summary"]["median"] for m in p["metrics"] if m["summary"]}
               for p in data["probes"]}
    print(f"\nhc commission on Slurm: {seconds:.1f} s; {medians}")


def test_read_only_scratch_fails_the_commissioning(app: Flask, read_only_dir: Path) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(catalog_group, ["install", "scratch-io", "--set", f"SCRATCH={read_only_dir}"]).exit_code == 0
    code, data, _seconds, output = _commission(app, "--probes", "node,scratch-io")
    assert code != 0, output
    assert data["failed"] == ["scratch-io"] and not data["passed"]
    scratch = next(p for p in data["probes"] if p["probe"] == "scratch-io")
    assert f"cannot write to {read_only_dir}" in scratch["reasons"][0]["reason"]
    text = runner.invoke(commission_command, ["slurm-debug", "--probes", "scratch-io", "--timeout", "600"])
    assert text.exit_code == 1 and "FAILED: scratch-io" in text.output

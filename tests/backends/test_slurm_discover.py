"""``hc queue discover slurm``: queues from the partitions the real cluster reports."""
from __future__ import annotations

from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster

from hcflask.extensions import db
from hcflask.models import Queue
from tests.conftest import make_app

pytestmark = pytest.mark.slurm


def test_discover_lists_and_creates_queues(slurm: SlurmCluster, tmp_path: Path) -> None:
    app = make_app(tmp_path / "instance", BACKENDS={"local": {}, "slurm": slurm.backend_config, "panda": {}})
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["queue", "discover", "slurm"])
    assert listed.exit_code == 0, listed.output
    assert "debug" in listed.output and "long" in listed.output and "01:00:00" in listed.output
    created = runner.invoke(args=["queue", "discover", "slurm", "--add", "debug", "--prefix", "hpc-"])
    assert created.exit_code == 0, created.output
    with app.app_context():
        queue = db.session.query(Queue).filter_by(name="hpc-debug").one()
        assert queue.backend == "slurm" and queue.options == {"partition": "debug"}
        assert "time limit 01:00:00" in queue.description
    again = runner.invoke(args=["queue", "discover", "slurm", "--all", "--prefix", "hpc-"])
    assert "queue hpc-long (slurm) created" in again.output and "hpc-debug (slurm) created" not in again.output
    bad = runner.invoke(args=["queue", "discover", "slurm", "--add", "gpu"])
    assert bad.exit_code != 0 and "add: slurm offers no 'gpu'" in bad.output
    assert "unknown backend" in runner.invoke(args=["queue", "discover", "pbs"]).output

"""A Slurm queue reading the Rucio dataset over root:// (real Slurm, Rucio and XRootD)."""
from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from data_servers import RucioServer
from flask import Flask
from test_inputs_local import READER, finished, inputs_doc

from hcflask import create_app
from hcflask.extensions import db
from tests.backends.slurm_cluster import SlurmCluster, available
from tests.factories import make_queue, make_template, make_test, run_ticks

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    why = available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"real Slurm needed in CI: {why}")
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm-data"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_app(slurm: SlurmCluster, rucio_server: RucioServer, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    instance = tmp_path / "instance"
    app = create_app({
        "INSTANCE_PATH": instance, "TESTING": True, "SECRET_KEY": "test", "DEMO": False,
        "HOST_NAME": "testhost", "INSTANCE_NAME": "d" + secrets.token_hex(3), "JOBS_RESULT_GRACE_SECONDS": 5,
        "BACKENDS": {"local": {}, "slurm": slurm.backend_config, "panda": {}}, **rucio_server.hc_config(),
    })
    (instance / "jobs").mkdir(parents=True, exist_ok=True)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_slurm_jobs_read_every_file(slurm_app: Flask, dataset: dict[str, Any], xrd_env: None) -> None:
    app = slurm_app
    with app.app_context():
        make_queue("slurm-debug", "slurm", partition="debug", rse=dataset["rse"])
        template = make_template("reads", queues=["slurm-debug"], script=READER, jobs_in_flight=4, max_jobs=10,
                                 inputs=inputs_doc(dataset["did"]))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 10, timeout=240, pause=0.5)
        jobs = finished(test.id)
        assert [j.state for j in jobs] == ["succeeded"] * 10, [j.failure_reason for j in jobs]
        # round robin: 10 jobs of 2 files read each of the 10 files twice, all over root://
        read = Counter(f["name"] for j in jobs for f in j.inputs or [])
        assert read == dict.fromkeys(dataset["names"], 2)
        assert all(f["url"].startswith("root://") for j in jobs for f in j.inputs or [])
        for job in jobs:
            metrics = {m.name: m.value for m in job.metrics}
            assert metrics["input_bytes"] == 2 * 64 * 1024
            assert metrics["stagein_seconds"] > 0 and metrics["stagein_mb_per_s"] > 0

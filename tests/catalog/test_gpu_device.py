"""The gpu probe's device path: the vector multiplication on a real GPU.

Marked ``gpu``: it needs a machine with a GPU and CuPy or PyTorch, which the CI machines lack,
so tox leaves it out (``-m "not container and not gpu"``) rather than skipping it inside.  Its
not-applicable path runs everywhere (tests/catalog/test_commission_local.py).  Run it on a GPU
node with ``pytest -m gpu tests/catalog/test_gpu_device.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hcflask.cli.catalog import catalog_group, commission_command
from tests.conftest import make_app
from tests.factories import make_queue

pytestmark = pytest.mark.gpu


def test_vector_multiplication_on_the_device(tmp_path: Path) -> None:
    app = make_app(tmp_path / "instance", JOBS_RESULT_GRACE_SECONDS=5)
    with app.app_context():
        make_queue("local")
    runner = app.test_cli_runner()
    assert runner.invoke(catalog_group, ["install", "gpu"]).exit_code == 0
    result = runner.invoke(commission_command, ["local", "--probes", "gpu", "--json"])
    assert result.exit_code == 0, result.output
    probe = json.loads(result.stdout[result.stdout.index("{"):])["probes"][0]
    assert probe["verdict"] == "pass", probe
    medians = {m["metric"]: m["summary"]["median"] for m in probe["metrics"] if m["summary"]}
    assert medians["gpus_seen"] >= 1 and medians["device_memory_mb"] > 0 and medians["vecmul_seconds"] > 0

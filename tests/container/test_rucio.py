"""Input data from hc.sif: the image carries rucio-clients' Client library (issue 22 item 8).

The real Rucio server of tests/data runs on the host (its own virtualenv, on
the test PostgreSQL) with a dataset of files on an RSE of tests/data's
XRootD server whose ``file`` protocol points at the exported folder; the
folder is bound into the image at its own path.  The service runs in the image as the unprivileged user, asks Rucio
for the dataset's replicas at the queue's RSE, and a local job copies its
two files, checksums verified by the wrapper, exactly as on a pip install.
The RSE's ``root`` protocol is not used here: the image carries no
``xrdcp`` (jobs that read over XRootD run on batch nodes, docs/container.md).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apptainer_runtime import FIGURES, Runtime, first_job, hc_in

from tests.data.data_servers import RucioServer, XRootDServer, add_rse, load_dataset, missing

pytestmark = pytest.mark.container

BIND_POINT = "/srv/hc/instance"
SCOPE = "hcimage"
DATASET = "hc_image_input"
RSE = "IMAGE_DISK"
LOCK = Path(__file__).resolve().parents[2] / "container" / "requirements.lock"
TEMPLATE = """\
name: data-smoke
queues: [dq]
lifetime: 3600
jobs_in_flight: 1
max_jobs: 1
inputs:
  dataset: "{did}"
  files_per_job: 2
  access: copy
  protocols: [file]
workload:
  script: |
    n=0
    for f in $HC_INPUT_FILES; do cat "$f" > /dev/null || exit 3; n=$((n + 1)); done
    echo "hc-ok read $n files in the image"
  resources: {{cores: 1, memory_mb: 100, walltime: 300}}
  success: {{exit_code: 0}}
"""


@pytest.fixture(scope="module")
def rucio_dataset(postgres: Any) -> Iterator[tuple[RucioServer, Path]]:
    """A real Rucio server with 4 files in ``hcimage:hc_image_input`` at an RSE on a folder of the host.

    The XRootD server exports that folder because Rucio's upload client checks the RSE over its
    ``root`` protocol; the job in the image reads the ``file`` protocol.
    """
    why = missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"Rucio needed in CI: {why}")
        pytest.skip(why)
    storage = XRootDServer()
    server = RucioServer(postgres.create_database())
    before = os.environ.get("RUCIO_CONFIG")
    try:
        server.configure()
        os.environ["RUCIO_CONFIG"] = str(server.client_config)  # Rucio's upload client reads it
        server.bootstrap()
        server.start()
        storage.start()
        rucio = server.client()
        rucio.add_scope("root", SCOPE)
        add_rse(rucio, RSE, storage)
        upload = Path(tempfile.mkdtemp(prefix="hc-upload-"))
        load_dataset(rucio, RSE, SCOPE, DATASET, upload, files=4)
        shutil.rmtree(upload, ignore_errors=True)
        yield server, storage.root
    finally:
        server.close()
        storage.close()
        if before is None:
            os.environ.pop("RUCIO_CONFIG", None)
        else:
            os.environ["RUCIO_CONFIG"] = before


def test_image_carries_the_locked_rucio_client_without_its_command(runtime: Runtime, image: Path) -> None:
    """The library at the lock's version imports; the ``rucio`` command, whose dependencies are left
    out (rich, pygments, jsonschema), is not on PATH rather than failing with a traceback."""
    pin = next(line.split()[0].split("==")[1] for line in LOCK.read_text().splitlines()
               if line.startswith("rucio-clients=="))
    done = runtime.run("exec", str(image), "python", "-c",
                       "import importlib.metadata as m; from rucio.client import Client; "
                       "from hcflask.data import catalogue; print(m.version('rucio-clients'))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == pin
    which = runtime.run("exec", str(image), "sh", "-c", "command -v rucio || echo none")
    assert which.stdout.strip() == "none"


def test_local_job_in_the_image_stages_in_through_rucio(runtime: Runtime, image: Path,
                                                         rucio_dataset: tuple[RucioServer, Path]) -> None:
    server, storage = rucio_dataset
    instance = runtime.folder("instance-rucio")
    (instance / "data.yaml").write_text(TEMPLATE.format(did=f"{SCOPE}:{DATASET}"))
    host = runtime.with_host_paths(str(storage))
    config = {"HC_RUCIO_HOST": server.url, "HC_RUCIO_USERNAME": "ddmlab", "HC_RUCIO_PASSWORD": "hc-rucio-secret",
              "HC_RUCIO_TIMEOUT": "10"}
    common = ("--bind", f"{instance}:{BIND_POINT}", "--bind", str(storage), "--env", "HC_DEMO=false",
              *[a for k, v in config.items() for a in ("--env", f"{k}={v}")])

    def hc(*args: str) -> str:
        return hc_in(host, image, common, *args)

    hc("queue", "add", "dq", "--backend", "local", "-o", f"rse={RSE}")
    hc("template", "add", f"{BIND_POINT}/data.yaml")
    hc("test", "start", "data-smoke")
    jobs, seconds = first_job(host, image, common, runtime.work / "rucio-service.log", within=120)
    FIGURES["job with Rucio input from the image"] = f"{seconds:.0f} s"
    (job,) = jobs
    assert job["state"] == "succeeded", job
    stdout = next((instance / "jobs").rglob("stdout")).read_text()
    assert "hc-ok read 2 files in the image" in stdout
    # the wrapper's own account: two of the dataset's files copied, every byte (checksums verified)
    stagein = json.loads(next((instance / "jobs").rglob("stagein.json")).read_text())
    assert (stagein["files"], stagein["bytes"], stagein["access"]) == (2, 2 * 64 * 1024, "copy")

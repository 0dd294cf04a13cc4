"""A ``panda`` queue served from hc.sif: the image carries panda-client.

The real PanDA test server of tests/panda_server runs on the host (its
database, web server, adder and pilot); the service runs in the image as
the unprivileged user, with its own copy of the test user's proxy and the
CA folder, submits one job, and sees it through to success.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from apptainer_runtime import FIGURES, Runtime, first_job, hc_in

from tests.panda_server.fixture import panda, panda_server

__all__ = ["panda", "panda_server"]  # the fixtures, imported for this module

pytestmark = [pytest.mark.container, pytest.mark.panda]

BIND_POINT = "/srv/hc/instance"
TEMPLATE = """\
name: panda-smoke
queues: [pq]
lifetime: 3600
jobs_in_flight: 1
max_jobs: 1
workload:
  script: echo "hc-ok from the image"
  resources: {cores: 1, memory_mb: 100, walltime: 300}
  success: {exit_code: 0}
"""


def _credentials(runtime: Runtime, panda) -> dict[str, str]:  # noqa: ANN001 - the fixture's server
    """The test user's proxy and the CA folder, readable by the unprivileged user."""
    assert panda.certs is not None
    folder = runtime.folder("panda-credentials")
    shutil.copytree(panda.certs.ca_dir, folder / "certificates")
    shutil.copy(panda.certs.user.proxy, folder / "proxy")
    for path in [folder / "proxy", folder / "certificates", *(folder / "certificates").iterdir()]:
        os.chown(path, runtime.uid, runtime.uid)
    (folder / "proxy").chmod(0o600)
    return {**panda.queue_options("HC_TEST_QUEUE"), "ca_dir": str(folder / "certificates"),
            "proxy": str(folder / "proxy")}


def test_panda_queue_runs_a_job_from_the_image(runtime: Runtime, image: Path, panda) -> None:  # noqa: ANN001
    options = _credentials(runtime, panda)
    instance = runtime.folder("instance-panda")
    (instance / "panda.yaml").write_text(TEMPLATE)
    host = runtime.with_host_paths(str(Path(options["proxy"]).parent))
    common = ("--bind", f"{instance}:{BIND_POINT}", "--env", "HC_DEMO=false")

    def hc(*args: str) -> str:
        return hc_in(host, image, common, *args)

    hc("queue", "add", "pq", "--backend", "panda", *[a for k, v in options.items() for a in ("-o", f"{k}={v}")])
    hc("template", "add", f"{BIND_POINT}/panda.yaml")
    hc("test", "start", "panda-smoke")
    jobs, seconds = first_job(host, image, common, runtime.work / "panda-service.log", within=180)
    FIGURES["PanDA job from the image, start to end"] = f"{seconds:.0f} s"
    job = jobs[0]
    assert job["state"] == "succeeded", job
    assert job["backend"] == "panda" and job["backend_id"].isdigit()

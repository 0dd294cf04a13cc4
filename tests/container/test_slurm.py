"""The login-node path of docs/container.md: hcflask in hc.sif submits to the host's Slurm.

The image carries no Slurm.  As docs/container.md says, the host's client commands,
their library directory and libmunge are bound in at their own paths, with
the cluster's config and munge socket, and the instance folder is bound at
its host path (HC_INSTANCE set to it) so that job work dirs name the same
place on the compute node.  The cluster is the real single-node one of
tests/backends/slurm_cluster.py, its daemons on the host; its slurmd runs
the jobs as the same unprivileged user, who therefore also needs an account
on the host, as a site's directory service would give.
"""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apptainer_runtime import REPO, RUN_UID, RUN_USER, Runtime, free_port, http_get, stop, wait_http_ok

from tests.backends.slurm_cluster import SlurmCluster, available

pytestmark = [pytest.mark.container, pytest.mark.slurm]

TEMPLATE = """\
name: slurm-smoke
description: one short job on the debug partition, submitted from the image
queues: [cpu]
lifetime: 3600
jobs_in_flight: 1
max_jobs: 1
autoexclusion: false
renew: false
workload:
  script: |
    echo "ran as $(id -un) on $(hostname)"
    echo "hc-ok value=1"
  resources: {cores: 1, memory_mb: 100, walltime: 300}
  success: {exit_code: 0, must_match: ["hc-ok"]}
"""


def slurm_binds(cluster: SlurmCluster) -> list[str]:
    """What container/slurm-binds.sh, the script the docs give sites, says to bind for this host."""
    env = {**os.environ, **cluster.env}
    out = subprocess.run([REPO / "container" / "slurm-binds.sh"], capture_output=True, text=True, env=env,
                         check=True, timeout=30).stdout.strip()
    return out.split(",")


@contextlib.contextmanager
def _host_account() -> Iterator[None]:
    """The user's account on the host for slurmd, for the test's duration: one the test
    adds is removed afterwards, so the host's /etc/passwd ends as it began."""
    try:
        known = pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--uid", str(RUN_UID), "--no-create-home", "--shell", "/usr/sbin/nologin",
                        RUN_USER], check=True, timeout=30)
        try:
            yield
        finally:
            subprocess.run(["userdel", RUN_USER], check=True, timeout=30)
        return
    assert known.pw_uid == RUN_UID, f"host user {RUN_USER} has uid {known.pw_uid}, the image's user {RUN_UID}"
    yield


@pytest.fixture(scope="module")
def shared(runtime: Runtime) -> Iterator[Path]:
    """A folder the compute node reaches as the user, for the cluster and the instance.

    pytest's basetemp is root's only, and slurmd runs the job script from its
    spool and the job in its work dir as the unprivileged user.
    """
    if not runtime.in_root:
        pytest.skip("the test Slurm cluster runs its daemons as root")
    path = Path(tempfile.mkdtemp(prefix="hc-slurm-", dir="/var/tmp"))
    path.chmod(0o755)  # noqa: S103 - see the docstring
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def cluster(shared: Path) -> Iterator[SlurmCluster]:
    reason = available()
    assert reason is None, reason
    with _host_account():
        slurm = SlurmCluster(shared / "slurm")
        slurm.start()
        try:
            yield slurm
        finally:
            slurm.stop()


def test_service_in_image_runs_a_job_through_host_slurm(runtime: Runtime, image: Path, cluster: SlurmCluster,
                                                          shared: Path) -> None:
    instance = shared / "instance"
    instance.mkdir()
    os.chown(instance, runtime.uid, runtime.uid)
    binds = slurm_binds(cluster)
    assert str(cluster.root) in binds and "/usr/bin/sbatch" in binds, binds
    host = runtime.with_host_paths(*binds, str(instance))
    # SLURM_CONF stands for the host's /etc/slurm, which a login node binds instead
    common = ("--bind", ",".join([*binds, str(instance)]), "--env", f"HC_INSTANCE={instance}",
              "--env", f"SLURM_CONF={cluster.conf}")

    def hc(*args: str) -> str:
        done = host.run("run", *common, str(image), *args)
        assert done.returncode == 0, f"hc {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    hc("init")
    hc("queue", "add", "cpu", "--backend", "slurm", "--option", "partition=debug")
    template = runtime.work / "slurm-smoke.yaml"
    template.write_text(TEMPLATE)
    hc("template", "import", str(template))
    hc("test", "start", "slurm-smoke")

    port = free_port()
    log = runtime.work / "service-slurm.log"
    proc = host.popen("run", *common, "--env", f"HC_PORT={port}", "--env", "HC_TICK_SECONDS=1", str(image),
                      log=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/", 120, proc, log)
        deadline = time.monotonic() + 120
        while True:
            status, body = http_get(base + "/api/v1/jobs?state=succeeded")
            succeeded = [job for job in json.loads(body)["items"] if job["queue"] == "cpu"] if status == 200 else []
            if succeeded:
                break
            assert time.monotonic() < deadline, (
                f"no Slurm job succeeded: {http_get(base + '/api/v1/jobs?state=failed')[1][:2000]!r}\n"
                + log.read_text()[-3000:]
            )
            time.sleep(1)
    finally:
        stop(proc)
    job = succeeded[0]
    assert job["backend_id"].isdigit(), job
    workdirs = [p.parent for p in (instance / "jobs").rglob(f"slurm-{job['backend_id']}.out")]
    assert len(workdirs) == 1, "the job's Slurm output is not in the instance folder"
    assert f"ran as {RUN_USER}" in (workdirs[0] / "stdout").read_text()
    assert all(p.lstat().st_uid == RUN_UID for p in workdirs[0].iterdir())

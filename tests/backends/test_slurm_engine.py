"""The engine's real ticks driving real Slurm: two queues (partitions debug
and long), every job submitted, monitored, judged and stored, with one
batched status call per tick."""
from __future__ import annotations

import collections
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from slurm_cluster import SlurmCluster
from sqlalchemy import select

from hcflask import create_app
from hcflask.engine.common import backend
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.submission import submission_tick
from hcflask.extensions import db
from hcflask.models import Job
from hcflask.states import JobState
from tests.factories import make_queue, make_template, make_test, run_ticks

pytestmark = pytest.mark.slurm


@pytest.fixture()
def slurm_app(slurm: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    # queue options are validated by the backend class (no config): it reads $SLURM_CONF
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    instance = tmp_path / "instance"
    app = create_app({
        "INSTANCE_PATH": instance, "TESTING": True, "SECRET_KEY": "test", "DEMO": False,
        "HOST_NAME": "testhost", "INSTANCE_NAME": "e" + secrets.token_hex(3),
        "JOBS_RESULT_GRACE_SECONDS": 5,
        "BACKENDS": {"local": {}, "slurm": slurm.backend_config, "panda": {}},
    })
    (instance / "jobs").mkdir(parents=True, exist_ok=True)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_engine_ticks_two_partitions(slurm_app: Flask, slurm: SlurmCluster) -> None:
    app = slurm_app
    with app.app_context():
        make_queue("slurm-debug", "slurm", partition="debug")
        make_queue("slurm-long", "slurm", partition="long", extra_args=["--nice=0"])
        make_test(make_template("t-slurm", queues=["slurm-*"], jobs_in_flight=2, max_jobs=3), app)
        calls = backend("slurm").calls  # the app's one instance, which the ticks use
        per_tick = []  # the Slurm status commands each monitor tick issued
        deadline = time.monotonic() + 120
        while True:
            submission_tick(app)
            before = collections.Counter(calls)
            monitor_tick(app)
            per_tick.append(calls - before)
            db.session.expire_all()
            jobs = db.session.scalars(select(Job).order_by(Job.id)).all()
            if len(jobs) == 6 and all(JobState(j.state).final for j in jobs):
                break
            assert time.monotonic() < deadline, [(j.name, j.state, j.native_state) for j in jobs]
            time.sleep(0.5)
        assert [j.state for j in jobs] == ["succeeded"] * 6, [(j.state, j.failure_reason) for j in jobs]
        assert {j.native_state for j in jobs} == {"COMPLETED"}
        assert all(j.exit_code == 0 and j.host == slurm.node for j in jobs)
        assert all([m.value for m in j.metrics] == [42.0] for j in jobs)
        # Slurm has exactly these jobs, under these names, in the queues' partitions
        listed = slurm.run("sacct", "-c", "-n", "-P", "-o", "JobID,JobName,Partition").stdout.splitlines()
        seen = {name: (jid, part) for jid, name, part in (line.split("|") for line in listed)}
        for job in jobs:
            assert seen[job.name] == (job.backend_id, job.queue.options["partition"])
        assert calls["sbatch"] == 6
        # one squeue and one sacct per tick at most; the plain cluster has no slurmdbd, so the first
        # sacct (accounting "auto") answers "disabled" and that tick retries once with sacct -c, which
        # the backend then keeps.  A total against the tick count flaked: under load the jobs end
        # within the first ticks, so nearly every tick needs sacct and the probe made 6 in 5 ticks.
        assert max(tick["squeue"] for tick in per_tick) == 1
        sacct = [tick["sacct"] for tick in per_tick if tick["sacct"]]
        assert sacct[0] <= 2 and all(n == 1 for n in sacct[1:]), per_tick
        assert backend("slurm").accounting == "jobcomp"


RUNTIMES = ("apptainer", "singularity")


def path_without_runtimes(tmp_path: Path) -> str:
    """$PATH with apptainer and singularity hidden: a folder of PATH that holds one is
    replaced by a folder of links to everything else in it (sbatch passes PATH to the job)."""
    parts = []
    for i, folder in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if not any(Path(folder, name).exists() for name in RUNTIMES):
            parts.append(folder)
            continue
        shadow = tmp_path / f"path{i}"
        shadow.mkdir()
        for entry in Path(folder).iterdir():
            if entry.name not in RUNTIMES:
                (shadow / entry.name).symlink_to(entry)
        parts.append(str(shadow))
    return os.pathsep.join(parts)


def test_container_workload_without_runtime(slurm_app: Flask, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A container workload on a node without apptainer/singularity fails with that reason.

    Where a runtime is installed, the job gets a PATH without it (the node's
    view is the job's PATH), so the test runs everywhere instead of skipping.
    """
    monkeypatch.setenv("PATH", path_without_runtimes(tmp_path))
    assert not any(shutil.which(name) for name in RUNTIMES)
    app = slurm_app
    with app.app_context():
        make_queue("slurm-debug", "slurm", partition="debug")
        make_test(make_template("t-image", queues=["slurm-debug"], max_jobs=1,
                                workload={"image": "docker://busybox", "command": "echo hc-ok"}), app)
        run_ticks(app, lambda: all(JobState(j.state).final for j in db.session.scalars(select(Job))), 60)
        job = db.session.scalars(select(Job)).one()
        assert job.state == "failed"
        assert "no container runtime (apptainer or singularity)" in job.failure_reason

"""Stage-out (issue 22 item 6): every job uploads a small file with Rucio, reads it back, and its
rule expires; against the real Rucio and XRootD servers of conftest.py."""
from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from data_servers import XRD_FAST, RucioServer, XRootDServer, add_rse
from test_inputs_local import data_app, finished

from hcflask.extensions import db
from hcflask.models import Job
from tests.factories import make_queue, make_template, make_test, run_ticks

#: writes its own output file (the wrapper uploads it)
WRITER = 'echo "hc output of $HC_JOB_NAME" > "$HC_OUTPUT_FILE"\necho hc-ok\n'


def outputs_doc(rse: str, **overrides: Any) -> dict[str, Any]:
    return {"rse": rse, "lifetime": 3600, "scope": "hctest", **overrides}


def uploaded(job: Job) -> dict[str, Any]:
    info = json.loads((Path(job.workdir) / "stageout.json").read_text())
    assert isinstance(info, dict)
    return info


def test_each_job_uploads_reads_back_and_its_rule_expires(tmp_path: Path, rucio_server: RucioServer,
                                                          dataset: dict[str, Any], rucio_cli: None,
                                                          xrd_env: None) -> None:
    rucio = dataset["rucio"]
    app = data_app(tmp_path, rucio_server, RUCIO_JOB_CONFIG=str(rucio_server.client_config))
    with app.app_context():
        make_queue("site-a")
        template = make_template("writes", queues=["site-a"], script=WRITER, max_jobs=2,
                                 outputs=outputs_doc(dataset["rse"]))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 2, timeout=120)
        jobs = finished(test.id)
        assert [j.state for j in jobs] == ["succeeded"] * 2, [j.failure_reason for j in jobs]
        for job in jobs:
            info = uploaded(job)
            name = info["file"]
            assert name.startswith(f"{job.name}.") and info["rse"] == dataset["rse"]
            metrics = {m.name: (m.value, m.unit) for m in job.metrics}
            content = f"hc output of {job.name}\n".encode()
            assert metrics["output_bytes"] == (len(content), "B")
            assert metrics["stageout_seconds"][0] > 0 and metrics["stageout_seconds"][1] == "s"
            # readable on the storage through its root:// door, by a reader that is not the job
            (replica,) = rucio.list_replicas([{"scope": "hctest", "name": name}], rse_expression=dataset["rse"],
                                             schemes=["root"])
            (url,) = replica["pfns"]
            read = subprocess.run(["xrdcp", "--nopbar", url, "-"], capture_output=True, timeout=60,
                                  env={"PATH": "/usr/bin:/bin", **XRD_FAST}, check=True)
            assert read.stdout == content
            # one rule, at that RSE, expiring after the template's lifetime
            (rule,) = rucio.list_did_rules("hctest", name)
            assert rule["rse_expression"] == dataset["rse"]
            lifetime = rule["expires_at"] - rule["created_at"]
            assert timedelta(seconds=3590) <= lifetime <= timedelta(seconds=3610), lifetime
        test_id = test.id
    page = app.test_client().get(f"/tests/{test_id}").get_data(as_text=True)
    assert f"to {dataset['rse']}, scope hctest, rule lifetime 3600 s" in page


def test_unwritable_rse_fails_the_job_naming_file_and_rse(tmp_path: Path, rucio_server: RucioServer,
                                                          dataset: dict[str, Any], xrootd: XRootDServer,
                                                          rucio_cli: None, xrd_env: None) -> None:
    """An RSE Rucio marks unavailable for writing (as a site in downtime is): the upload is refused."""
    rucio = dataset["rucio"]
    if "CLOSED_DISK" not in {r["rse"] for r in rucio.list_rses()}:
        add_rse(rucio, "CLOSED_DISK", xrootd)
        rucio.update_rse("CLOSED_DISK", {"availability_write": False})
    app = data_app(tmp_path, rucio_server, RUCIO_JOB_CONFIG=str(rucio_server.client_config))
    with app.app_context():
        make_queue("site-a")
        template = make_template("writes", queues=["site-a"], script="echo hc-ok", max_jobs=1,
                                 outputs=outputs_doc("CLOSED_DISK"))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=120)
        (job,) = finished(test.id)
        name = uploaded(job)["file"]
        assert job.state == "failed"
        assert job.failure_reason.startswith(f"stage-out failed: hctest:{name} to CLOSED_DISK: rucio upload: "), \
            job.failure_reason
        assert job.exit_code == 94
        # the robot groups by signature: the file's per-job name is not part of it
        assert job.failure_signature.startswith("stage-out failed: hctest:<id> to CLOSED_DISK: rucio upload: ")
        assert "hc-ok" in (Path(job.workdir) / "stdout").read_text(), "the payload ran"
        assert job.failure_reason in (Path(job.workdir) / "stderr").read_text()
        metrics = {m.name: m.value for m in job.metrics}
        assert metrics["output_bytes"] > 0 and "stageout_seconds" in metrics


def test_xrootd_down_fails_the_stageout(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any],
                                         xrootd: XRootDServer, rucio_cli: None, xrd_env: None) -> None:
    app = data_app(tmp_path, rucio_server, RUCIO_JOB_CONFIG=str(rucio_server.client_config))
    with app.app_context():
        make_queue("site-a")
        template = make_template("writes", queues=["site-a"], script="echo hc-ok", max_jobs=1,
                                 outputs=outputs_doc(dataset["rse"]))
        xrootd.stop()
        try:
            test = make_test(template, app)
            run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=120)
        finally:
            xrootd.start()
        db.session.expire_all()
        (job,) = finished(test.id)
        name = uploaded(job)["file"]
        assert job.state == "failed"
        assert job.failure_reason.startswith(f"stage-out failed: hctest:{name} to {dataset['rse']}: rucio upload: "), \
            job.failure_reason
        assert "Connection error" in job.failure_reason

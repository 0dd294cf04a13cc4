"""PanDA jobs with an input dataset, on the real PanDA server of tests/panda_server with the real
Rucio and XRootD servers of conftest.py: the job spec carries the files as PanDA's own input
FileSpecs, the test pilot runs the wrapper (whose stage-in reads them over root://), and the
stage-in's numbers come back through the pilot's job report (PanDA's job metadata)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from data_servers import RucioServer, load_dataset, pfn_path
from sqlalchemy import select
from test_inputs_local import data_app, finished, inputs_doc

from hcflask.extensions import db
from hcflask.models import Job
from tests.factories import make_queue, make_template, make_test, run_ticks
from tests.panda_server.fixture import panda, panda_server

__all__ = ["panda", "panda_server"]
pytestmark = pytest.mark.panda

#: the pilot keeps stdout: the exit code says whether both files were there, 64 KiB each
SCRIPT = """
n=0
for f in $HC_INPUT_FILES; do [ "$(stat -c %s "$f")" -eq 65536 ] || exit 5; n=$((n + 1)); done
[ "$n" -eq 2 ] || exit 4
"""


def _input_rows(panda: Any, panda_id: str) -> list[dict[str, str]]:
    """PanDA's own input file rows of a job (filesTable4), as the server stored them."""
    cols = ("lfn", "scope", "dataset", "proddblock", "dispatchdblock", "guid", "fsize", "checksum", "status")
    out = panda.psql("SELECT lfn, scope, dataset, proddblock, dispatchdblock, guid, fsize, checksum, status "
                     "FROM panda.filestable4 WHERE pandaid = :'id' AND type = 'input' ORDER BY lfn;", id=panda_id)
    return [dict(zip(cols, line.split("|"), strict=True)) for line in out.splitlines()]


def _pilot_job(panda: Any, panda_id: str) -> dict[str, Any]:
    """The job as the pilot received it (kept in its work dir as pilot3 keeps pandaJobData.out)."""
    return json.loads((panda.base / "pilot" / panda_id / "pandaJobData.out").read_text())


def test_panda_job_carries_its_input_files_and_returns_the_stagein_metrics(
        tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any], panda: Any) -> None:
    app = data_app(tmp_path, rucio_server)
    rucio = dataset["rucio"]
    files = {f["name"]: f for f in rucio.list_files(dataset["scope"], dataset["did"].split(":")[1])}
    with app.app_context():
        make_queue("pq-data", "panda", rse=dataset["rse"], **panda.queue_options("HC_TEST_QUEUE"))
        template = make_template("panda-reads", ["pq-data"], script=SCRIPT, max_jobs=2, jobs_in_flight=2,
                                 workload={"success": {"exit_code": 0}, "metrics": {}},
                                 inputs=inputs_doc(dataset["did"]))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 2, timeout=120, pause=1)
        jobs = db.session.scalars(select(Job).where(Job.test_id == test.id)).all()
        assert [j.state for j in jobs] == ["succeeded", "succeeded"], [j.failure_reason for j in jobs]
        for job in jobs:
            assert len(job.inputs or []) == 2
            # the files the plan handed the job are PanDA input files, with Rucio's identity of each
            rows = _input_rows(panda, job.backend_id)
            assert [r["lfn"] for r in rows] == sorted(f["lfn"] for f in job.inputs)
            for row in rows:
                rucio_file = files[row["lfn"]]
                assert row["scope"] == dataset["scope"]
                assert row["dataset"] == row["proddblock"] == dataset["did"]
                assert row["dispatchdblock"] == "", "already at the queue's storage: no dispatch block (NULL)"
                guid = rucio_file["guid"].replace("-", "").upper()  # PanDA's dashed form
                assert row["guid"] == f"{guid[:8]}-{guid[8:12]}-{guid[12:16]}-{guid[16:20]}-{guid[20:]}"
                assert int(row["fsize"]) == rucio_file["bytes"] == 65536
                assert row["checksum"] == f"ad:{rucio_file['adler32']}"
                assert row["status"] == "ready"
            # ... and the pilot got them in the job description's input fields
            got = _pilot_job(panda, job.backend_id)
            assert sorted(got["inFiles"].split(",")) == [r["lfn"] for r in rows]
            assert set(got["scopeIn"].split(",")) == {dataset["scope"]}
            assert set(got["realDatasetsIn"].split(",")) == {dataset["did"]}
            assert sorted(got["GUID"].split(",")) == sorted(r["guid"] for r in rows)
            assert sorted(got["checksum"].split(",")) == sorted(r["checksum"] for r in rows)
            # the stage-in's numbers came back from the pilot's node through PanDA
            metrics = {m.name: m.value for m in job.metrics}
            assert metrics["input_bytes"] == 2 * 65536
            assert metrics["stagein_seconds"] > 0 and metrics["stagein_mb_per_s"] > 0
        prod = panda.psql("SELECT proddblock FROM panda.jobsarchived4 UNION ALL "
                          "SELECT proddblock FROM panda.jobsactive4;")
        assert dataset["did"] in prod


def test_panda_job_with_a_corrupted_input_fails_with_the_stagein_text(
        tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any], panda: Any) -> None:
    rucio = dataset["rucio"]
    load_dataset(rucio, dataset["rse"], dataset["scope"], "hc_corrupt_panda", tmp_path / "upload", files=1,
                 prefix="hc_corrupt_panda")
    name = next(iter(rucio.list_content(dataset["scope"], "hc_corrupt_panda")))["name"]
    path = pfn_path(rucio, dataset["scope"], name, dataset["rse"])
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("pq-data", "panda", rse=dataset["rse"], **panda.queue_options("HC_TEST_QUEUE"))
        template = make_template("panda-corrupt", ["pq-data"], script="true", max_jobs=1,
                                 workload={"success": {"exit_code": 0}, "metrics": {}},
                                 inputs=inputs_doc(f"{dataset['scope']}:hc_corrupt_panda", files_per_job=1))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=120, pause=1)
        (job,) = finished(test.id)
        assert job.state == "failed"
        # the wrapper's own words (PanDA keeps no job report of a failed job: from its payload error),
        # not "pilot error 1305: payload exited with code 93: ...", so the signatures group it as on other backends
        assert job.failure_reason.startswith(f"stage-in failed: {name} from {dataset['rse']}"), job.failure_reason
        assert "adler32 mismatch: expected" in job.failure_reason


def test_panda_job_stages_out_through_the_pilot(tmp_path: Path, rucio_server: RucioServer,
                                                dataset: dict[str, Any], panda: Any) -> None:
    """Input and output in one PanDA job: the pilot's node uploads with its own ``rucio`` command (the
    test pilot has rucio-clients, as a production node's image does), and both sides' numbers come back."""
    rucio = dataset["rucio"]
    app = data_app(tmp_path, rucio_server, RUCIO_JOB_CONFIG=str(rucio_server.client_config))
    with app.app_context():
        make_queue("pq-data", "panda", rse=dataset["rse"], **panda.queue_options("HC_TEST_QUEUE"))
        template = make_template("panda-writes", ["pq-data"], script=SCRIPT, max_jobs=1,
                                 workload={"success": {"exit_code": 0}, "metrics": {}},
                                 inputs=inputs_doc(dataset["did"]),
                                 outputs={"rse": dataset["rse"], "lifetime": 3600, "scope": dataset["scope"]})
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=120, pause=1)
        (job,) = finished(test.id)
        assert job.state == "succeeded", job.failure_reason
        metrics = {m.name: m.value for m in job.metrics}
        assert metrics["input_bytes"] == 2 * 65536 and metrics["output_bytes"] > 0
        assert metrics["stageout_seconds"] > 0
        name = json.loads((Path(job.workdir) / "stageout.json").read_text())["file"]
        assert name.startswith(f"{job.name}.")
        (rule,) = rucio.list_did_rules(dataset["scope"], name)
        assert rule["rse_expression"] == dataset["rse"] and rule["expires_at"] is not None

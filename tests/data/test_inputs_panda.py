"""A PanDA job with an input dataset: the real PanDA server's test pilot runs the wrapper, whose
stage-in reads the Rucio dataset's files over root:// in the pilot's directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from data_servers import RucioServer
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


def test_panda_job_reads_its_input_dataset(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any],
                                           panda: Any) -> None:
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("pq-data", "panda", rse=dataset["rse"], **panda.queue_options("HC_TEST_QUEUE"))
        template = make_template("panda-reads", ["pq-data"], script=SCRIPT, max_jobs=2, jobs_in_flight=2,
                                 workload={"success": {"exit_code": 0}, "metrics": {}},
                                 inputs=inputs_doc(dataset["did"]))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 2, timeout=120, pause=1)
        jobs = db.session.scalars(select(Job).where(Job.test_id == test.id)).all()
        assert [j.state for j in jobs] == ["succeeded", "succeeded"], [j.failure_reason for j in jobs]
        assert all(len(j.inputs or []) == 2 for j in jobs)
        prod = panda.psql("SELECT proddblock FROM panda.jobsarchived4 UNION ALL "
                          "SELECT proddblock FROM panda.jobsactive4;")
        assert dataset["did"] in prod

"""Full-chain jobs on the local backend reading a Rucio dataset over root://, against
the real Rucio and XRootD servers of conftest.py (issue 22)."""
from __future__ import annotations

import re
import statistics
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from data_servers import RucioServer, XRootDServer, add_rse, load_dataset, pfn_path
from flask import Flask
from sqlalchemy import func, select

from hcflask.engine.robot.robot import robot_pass
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Alert, Job, Queue, QueueClaim, Test
from tests.conftest import make_app
from tests.factories import make_queue, make_template, make_test, run_ticks

#: reads every staged-in file (the wrapper verified it), says how many
READER = """
n=0
for f in $HC_INPUT_FILES; do cat "$f" > /dev/null || exit 3; n=$((n + 1)); done
[ "$n" -gt 0 ] || { echo "no input files" >&2; exit 4; }
echo "hc-ok read $n files"
"""


def data_app(tmp_path: Path, rucio_server: RucioServer, **overrides: Any) -> Flask:
    return make_app(tmp_path / "instance", **{**rucio_server.hc_config(), **overrides})


def inputs_doc(did: str, **overrides: Any) -> dict[str, Any]:
    return {"dataset": did, "files_per_job": 2, "access": "copy", "protocols": ["root"], **overrides}


def finished(test_id: int) -> list[Job]:
    return list(db.session.scalars(select(Job).where(Job.test_id == test_id, Job.judged_at.is_not(None))
                                  .order_by(Job.id)))


def test_ten_jobs_read_every_file_over_root(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any],
                                            xrd_env: None) -> None:
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        template = make_template("reads", queues=["site-a"], script=READER, jobs_in_flight=2, max_jobs=10,
                                 inputs=inputs_doc(dataset["did"]))
        clock = time.monotonic()
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)
        first = time.monotonic() - clock
        run_ticks(app, lambda: len(finished(test.id)) >= 10, timeout=120)
        jobs = finished(test.id)
        assert [j.state for j in jobs] == ["succeeded"] * 10, [j.failure_reason for j in jobs]
        read = [f["name"] for j in jobs for f in j.inputs or []]
        assert all(len(j.inputs or []) == 2 for j in jobs)
        assert sorted(set(read)) == dataset["names"], "every file of the dataset was read"
        assert all(f["url"].startswith("root://127.0.0.1:") and len(f["adler32"]) == 8 for j in jobs for f in j.inputs)
        for job in jobs:
            metrics = {m.name: m.value for m in job.metrics}
            assert metrics["input_bytes"] == 2 * 64 * 1024
            assert metrics["stagein_seconds"] > 0 and metrics["stagein_mb_per_s"] > 0
            assert "hc-ok read 2 files" in (Path(job.workdir) / "stdout").read_text()
            assert not (Path(job.workdir) / "inputs").exists(), "the copies are removed once the payload ended"
            assert {m.name: m.unit for m in job.metrics}["stagein_mb_per_s"] == "MB/s"
        test_id = test.id
        rates = [next(m.value for m in j.metrics if m.name == "stagein_mb_per_s") for j in jobs]
    print(f"\nfrom hc test start to the first job with input read: {first:.1f} s")
    # /metrics: the queue's mean stage-in MB/s of the last hour, from these real stage-ins
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'hc_stagein_jobs{queue="site-a"} 10\n' in text
    found = re.search(r'^hc_stagein_mb_per_s\{queue="site-a"\} (\S+)$', text, re.M)
    assert found and float(found[1]) == pytest.approx(sum(rates) / len(rates), rel=1e-5)
    # the report has the stage-in throughput per queue like any metric
    report = app.test_client().get(f"/api/v1/tests/{test_id}/report").get_json()
    (queue,) = report["queues"]
    rows = {row["metric"]: row for row in queue["metrics"]}
    assert rows["stagein_mb_per_s"]["unit"] == "MB/s" and rows["stagein_mb_per_s"]["summary"]["n"] == 10
    # and the comparison knows it (the test against itself: the same ten values on both sides)
    compared = app.test_client().get(f"/api/v1/compare?tests={test_id},{test_id}&metric=stagein_mb_per_s").get_json()
    assert compared["unit"] == "MB/s" and compared["a"]["n"] == compared["b"]["n"] == 10, compared
    assert compared["a"]["median"] == pytest.approx(statistics.median(rates), rel=1e-3)


def test_queue_without_replica_gets_no_job_and_a_note(tmp_path: Path, rucio_server: RucioServer,
                                                      dataset: dict[str, Any], xrootd: XRootDServer) -> None:
    rucio = dataset["rucio"]
    if "EMPTY_DISK" not in {r["rse"] for r in rucio.list_rses()}:
        add_rse(rucio, "EMPTY_DISK", xrootd)
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        make_queue("site-empty", rse="EMPTY_DISK")
        template = make_template("reads", queues=["site-*"], script=READER, max_jobs=1,
                                 inputs=inputs_doc(dataset["did"]), autoexclusion=True)
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)
        for _ in range(3):
            core_tick(app)  # the robot passes too
        db.session.expire_all()
        empty = db.session.scalar(select(Queue).where(Queue.name == "site-empty"))
        assert db.session.scalar(select(func.count()).select_from(Job).where(Job.queue_id == empty.id)) == 0
        test = db.session.get(Test, test.id)
        assert test.input_notes["site-empty"].startswith("no input replica at RSE EMPTY_DISK for queue site-empty")
        assert "site-a" not in test.input_notes
        assert empty.status == "online"
        assert db.session.scalar(select(func.count()).select_from(QueueClaim)) == 0
        test_id = test.id
    page = app.test_client().get(f"/tests/{test_id}").get_data(as_text=True)
    assert "no input replica at RSE EMPTY_DISK for queue site-empty" in page


def test_xrootd_down_fails_stagein_naming_the_storage(tmp_path: Path, rucio_server: RucioServer,
                                                      dataset: dict[str, Any], xrootd: XRootDServer,
                                                      xrd_env: None) -> None:
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        template = make_template("reads", queues=["site-a"], script=READER, max_jobs=2,
                                 inputs=inputs_doc(dataset["did"]))
        xrootd.stop()
        try:
            test = make_test(template, app)
            run_ticks(app, lambda: len(finished(test.id)) >= 2, timeout=90)
        finally:
            xrootd.start()
        jobs = finished(test.id)
        assert [j.state for j in jobs] == ["failed", "failed"]
        for job in jobs:
            reason = job.failure_reason
            assert reason.startswith("stage-in failed: hc_input_"), reason
            assert f"from {dataset['rse']} (127.0.0.1:{xrootd.port}): xrdcp:" in reason, reason
            assert not (Path(job.workdir) / "stdout").read_text(), "the payload did not run"
            assert (Path(job.workdir) / "stderr").read_text().strip() == reason


def test_xrootd_down_mid_test_is_one_common_failure_for_the_robot(tmp_path: Path, rucio_server: RucioServer,
                                                                  dataset: dict[str, Any], xrootd: XRootDServer,
                                                                  xrd_env: None) -> None:
    """The storage stops after every queue's first job read its input: the stage-in failures of four queues
    are one signature, and the robot's outage guard treats them like any common failure (one outage alert,
    no queue excluded); the storage back, the jobs read again."""
    queues = ["site-a", "site-b", "site-c", "site-d"]
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        for name in queues:
            make_queue(name, rse=dataset["rse"])
        template = make_template("reads", queues=["site-*"], script=READER, max_jobs=0, autoexclusion=True,
                                 inputs=inputs_doc(dataset["did"], files_per_job=1))
        test = make_test(template, app)
        run_ticks(app, lambda: len([j for j in finished(test.id) if j.state == "succeeded"]) >= 4, timeout=60)

        def failed_per_queue() -> Counter[str]:
            return Counter(j.queue.name for j in finished(test.id) if j.state == "failed")

        xrootd.stop()
        try:
            run_ticks(app, lambda: all(failed_per_queue()[q] >= 3 for q in queues), timeout=120)
            counts = robot_pass()
            failed = [j for j in finished(test.id) if j.state == "failed"]
            assert {j.failure_reason.split(":")[0] for j in failed} == {"stage-in failed"}
            assert all(f"from {dataset['rse']} (127.0.0.1:{xrootd.port})" in j.failure_reason for j in failed)
            assert len({j.failure_signature for j in failed}) == 1, {j.failure_signature for j in failed}
            assert counts["outage"] == 1 and counts["excluded"] == 0, counts
            assert db.session.scalar(select(func.count()).select_from(Queue).where(Queue.status == "excluded")) == 0
            (alert,) = db.session.scalars(select(Alert).where(Alert.kind == "outage")).all()
            assert alert.closed_at is None
        finally:
            xrootd.start()
        before = len(finished(test.id))
        run_ticks(app, lambda: any(j.state == "succeeded" for j in finished(test.id)[before:]), timeout=60)


def test_corrupted_file_fails_on_its_checksum(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any],
                                              xrd_env: None) -> None:
    rucio = dataset["rucio"]
    load_dataset(rucio, dataset["rse"], dataset["scope"], "hc_corrupt", tmp_path / "upload", files=1,
                 prefix="hc_corrupt")
    name = next(iter(rucio.list_content(dataset["scope"], "hc_corrupt")))["name"]
    path = pfn_path(rucio, dataset["scope"], name, dataset["rse"])
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # one byte changed on the storage, same size
    path.write_bytes(bytes(data))
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        # over root:// xrdcp checks the sum end to end; over file:// (cp) the wrapper checks it after the copy
        for protocol in ("root", "file"):
            template = make_template(f"reads-{protocol}", queues=["site-a"], script=READER, max_jobs=1,
                                     inputs=inputs_doc(f"{dataset['scope']}:hc_corrupt", files_per_job=1,
                                                       protocols=[protocol]))
            test = make_test(template, app)
            run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)  # noqa: B023 - called at once
            (job,) = finished(test.id)
            assert job.state == "failed"
            assert job.inputs[0]["url"].startswith("root://" if protocol == "root" else "/")
            reason = job.failure_reason
            assert reason.startswith(f"stage-in failed: {name} from {dataset['rse']}"), reason
            assert "adler32 mismatch: expected" in reason, reason


def test_one_corrupted_file_among_several_fails_naming_it(tmp_path: Path, rucio_server: RucioServer,
                                                          dataset: dict[str, Any], xrd_env: None) -> None:
    """Several root:// files go through one xrdcp; the one whose adler32 differs is named, in xrdcp's words."""
    rucio = dataset["rucio"]
    load_dataset(rucio, dataset["rse"], dataset["scope"], "hc_corrupt_one", tmp_path / "upload", files=3,
                 prefix="hc_corrupt_one")
    names = sorted(f["name"] for f in rucio.list_content(dataset["scope"], "hc_corrupt_one"))
    path = pfn_path(rucio, dataset["scope"], names[1], dataset["rse"])
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    path.write_bytes(bytes(data))
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        template = make_template("reads-three", queues=["site-a"], script=READER, max_jobs=1,
                                 inputs=inputs_doc(f"{dataset['scope']}:hc_corrupt_one", files_per_job=3))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)
        (job,) = finished(test.id)
        assert job.state == "failed"
        assert job.failure_reason.startswith(f"stage-in failed: {names[1]} from {dataset['rse']}"), job.failure_reason
        assert "adler32 mismatch: expected" in job.failure_reason and "CheckSum error" in job.failure_reason
        assert not (Path(job.workdir) / "inputs").exists(), "what was fetched is removed"


def test_rucio_down_waits_with_one_alert_and_resumes(tmp_path: Path, rucio_server: RucioServer,
                                                     dataset: dict[str, Any], xrd_env: None) -> None:
    # refresh every pass, so the outage is seen at once (by default a test asks Rucio hourly)
    app = data_app(tmp_path, rucio_server, RUCIO_REFRESH_SECONDS=0.0, RUCIO_RETRY_SECONDS=0.0)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        template = make_template("reads", queues=["site-a"], script=READER, max_jobs=4,
                                 inputs=inputs_doc(dataset["did"]))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)
        rucio_server.stop()
        try:
            run_ticks(app, lambda: False if db.session.scalar(select(func.count()).select_from(Job).where(
                Job.judged_at.is_(None))) else True, timeout=60)
            before = db.session.scalar(select(func.count()).select_from(Job))
            for _ in range(4):
                run_ticks(app, lambda: True)
            alerts = db.session.scalars(select(Alert).where(Alert.kind == "catalogue")).all()
            assert len(alerts) == 1 and alerts[0].closed_at is None
            assert "Rucio" in alerts[0].title
            assert db.session.scalar(select(func.count()).select_from(Job)) == before, "submission waits"
            assert 'hc_alerts_open{kind="catalogue"} 1' in app.test_client().get("/metrics").get_data(as_text=True)
            assert {j.state for j in finished(test.id)} == {"succeeded"}, "no job failed"
        finally:
            rucio_server.start()
        run_ticks(app, lambda: len(finished(test.id)) >= 4, timeout=90)
        assert {j.state for j in finished(test.id)} == {"succeeded"}
        alerts = db.session.scalars(select(Alert).where(Alert.kind == "catalogue")).all()
        assert len(alerts) == 1 and alerts[0].closed_at is not None


def test_direct_access_payload_reads_the_urls(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any],
                                              xrd_env: None) -> None:
    script = """
for u in $HC_INPUT_URLS; do echo "read $(xrdcp --nopbar "$u" - | wc -c) bytes from $u"; done
[ -z "$HC_INPUT_FILES" ] && [ ! -d inputs ] && echo "hc-ok nothing copied"
"""
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        template = make_template("direct", queues=["site-a"], script=script, max_jobs=1,
                                 inputs=inputs_doc(dataset["did"], access="direct"))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)
        (job,) = finished(test.id)
        assert job.state == "succeeded", job.failure_reason
        out = (Path(job.workdir) / "stdout").read_text()
        assert out.count("read 65536 bytes from root://127.0.0.1:") == 2, out
        assert {m.name: m.value for m in job.metrics}["input_bytes"] == 2 * 65536


def test_plain_files_without_rucio(tmp_path: Path, xrootd: XRootDServer, xrd_env: None) -> None:
    """Inputs given as a root:// URL and a path: no Rucio configured, no checksum to verify."""
    (xrootd.root / "plain").mkdir(exist_ok=True)
    remote = xrootd.root / "plain" / "a.dat"
    remote.write_bytes(b"x" * 1000)
    remote.chmod(0o644)
    local = tmp_path / "b.dat"
    local.write_bytes(b"y" * 500)
    app = make_app(tmp_path / "instance")
    with app.app_context():
        make_queue("site-a")
        files = [f"{xrootd.url}/{remote}", str(local)]
        template = make_template("plain", queues=["site-a"], script=READER, max_jobs=1,
                                 inputs={"files": files, "files_per_job": 2})
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 1, timeout=60)
        (job,) = finished(test.id)
        assert job.state == "succeeded", job.failure_reason
        assert {m.name: m.value for m in job.metrics}["input_bytes"] == 1500


def test_plain_files_with_an_adler32_are_verified(tmp_path: Path, xrootd: XRootDServer, xrd_env: None) -> None:
    """A plain file may carry its adler32: checked like Rucio's, over root:// (xrdcp) and for a path (cp)."""
    (xrootd.root / "plain").mkdir(exist_ok=True)
    remote = xrootd.root / "plain" / "c.dat"
    remote.write_bytes(b"z" * 4000)
    remote.chmod(0o644)
    local = tmp_path / "d.dat"
    local.write_bytes(b"w" * 3000)
    right = {p: f"{zlib.adler32(p.read_bytes()):08x}" for p in (remote, local)}
    app = make_app(tmp_path / "instance")
    with app.app_context():
        make_queue("site-a")
        for url, path in ((f"{xrootd.url}/{remote}", remote), (str(local), local)):
            good = make_template(f"good-{path.name}", queues=["site-a"], script=READER, max_jobs=1,
                                 inputs={"files": [{"url": url, "adler32": right[path]}]})
            bad = make_template(f"bad-{path.name}", queues=["site-a"], script=READER, max_jobs=1,
                                inputs={"files": [{"url": url, "adler32": "0badc0de"}]})
            tests = [make_test(good, app), make_test(bad, app)]
            run_ticks(app, lambda: all(finished(t.id) for t in tests), timeout=60)  # noqa: B023 - called at once
            (ok,), (broken,) = (finished(t.id) for t in tests)
            assert ok.state == "succeeded", ok.failure_reason
            assert ok.inputs[0]["adler32"] == right[path]
            assert broken.state == "failed"
            assert broken.failure_reason.startswith(f"stage-in failed: {path.name} from "), broken.failure_reason
            assert "adler32 mismatch: expected 0badc0de" in broken.failure_reason


def test_data_access_stress_test_reports_mb_per_s_per_ramp_step(tmp_path: Path, rucio_server: RucioServer,
                                                                 dataset: dict[str, Any], xrd_env: None) -> None:
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"], slots=4)
        # each reader lasts a second, so 6 jobs cannot all end within the first step (3 s, 1 in flight)
        template = make_template("readers", queues=["site-a"], script=READER + "sleep 1\n", kind="stress",
                                 stress={"ramp": [{"at": 0, "in_flight": 1}, {"at": 3, "in_flight": 3}],
                                         "max_jobs": 6},
                                 inputs=inputs_doc(dataset["did"]))
        test = make_test(template, app)
        run_ticks(app, lambda: len(finished(test.id)) >= 6, timeout=120)
        test_id = test.id
    report = app.test_client().get(f"/api/v1/tests/{test_id}/report").get_json()
    steps = report["stress"]
    assert [s["in_flight"] for s in steps] == [1, 3]
    rates = [q["stagein_mb_per_s"] for s in steps for q in s["queues"]]
    assert rates and all(r is None or r > 0 for r in rates) and any(r for r in rates)
    page = app.test_client().get(f"/tests/{test_id}/report").get_data(as_text=True)
    assert "stage-in MB/s per job (median)" in page

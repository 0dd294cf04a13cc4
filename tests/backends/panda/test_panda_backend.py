"""The ``panda`` backend against a real PanDA server, pilot and adder (no engine).

Every job here really runs: the test pilot fetches it from the server, runs
the hcflask wrapper carried in its parameters and reports the real exit code.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hcflask.backends import BackendUnavailable, JobRef, JobSpec, OptionError, Resources, Status
from hcflask.backends.jobscript import RESULT, read_result
from hcflask.backends.panda import MARKER, PandaBackend
from hcflask.states import JobState

pytestmark = pytest.mark.panda
FINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
_counter = iter(range(1, 1_000_000))


def make_spec(root: Path, options: dict[str, str], payload: str, **resources: Any) -> JobSpec:
    job_id = next(_counter)
    workdir = root / f"job{job_id}"
    workdir.mkdir(parents=True)
    script = workdir / "job.sh"
    script.write_text("# the engine's copy; PanDA gets its own rendering\n")
    name = f"hc-ptest{int(time.time() * 1000) % 10**9}-{job_id}"
    return JobSpec(
        job_id=job_id, name=name, queue="pq", queue_options=PandaBackend.validate_options(options),
        workdir=workdir, script=script, resources=Resources(**resources), payload=payload,
        env={"HC_JOB_NAME": name, "HC_JOB_ID": str(job_id)},
    )


def ref(spec: JobSpec, backend_id: str) -> JobRef:
    return JobRef(backend_id=backend_id, name=spec.name, queue=spec.queue,
                  queue_options=spec.queue_options, workdir=spec.workdir)


def wait_for(backend: PandaBackend, refs: list[JobRef], done: Callable[[Status], bool],
             timeout: float = 60) -> dict[str, Status]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = backend.poll_many(refs)
        if all(done(statuses[r.backend_id]) for r in refs) or time.monotonic() > deadline:
            return statuses
        time.sleep(1)


def test_submit_runs_the_wrapper_and_reports_metrics(panda, tmp_path):
    backend = PandaBackend()
    spec = make_spec(tmp_path, panda.queue_options(), "echo hello from $HC_JOB_NAME; sleep 1", walltime=300)
    panda_id = backend.submit(spec)
    assert panda_id.isdigit()
    assert json.loads((spec.workdir / MARKER).read_text()) == {"state": "submitted", "panda_id": int(panda_id)}
    status = wait_for(backend, [ref(spec, panda_id)], lambda s: s.state in FINAL)[panda_id]
    assert status.state is JobState.SUCCEEDED, status
    assert status.native_state == "finished"
    assert status.exit_code == 0 and status.reason == ""
    assert status.host  # the worker node the pilot reported
    assert status.started_at is not None and status.ended_at is not None
    assert status.ended_at >= status.started_at
    assert "cpu_time" in status.metrics
    result = read_result(spec.workdir)
    assert result is not None and result["exit_code"] == 0 and result["source"] == "panda"
    # the pilot really ran the wrapper in its own directory
    stdout = panda.base / "pilot" / panda_id / "stdout"
    assert stdout.read_text().strip() == f"hello from {spec.name}"


def test_failing_payload_fails_with_pilot_code_and_diagnostic(panda, tmp_path):
    backend = PandaBackend()
    spec = make_spec(tmp_path, panda.queue_options(), "echo 'disk quota exceeded' >&2; exit 3")
    panda_id = backend.submit(spec)
    status = wait_for(backend, [ref(spec, panda_id)], lambda s: s.state in FINAL)[panda_id]
    assert status.state is JobState.FAILED, status
    assert status.native_state == "failed"
    assert status.exit_code == 3
    assert "pilot error 1305" in status.reason
    assert "payload error 3: disk quota exceeded" in status.reason


@pytest.mark.parametrize("label", ["prod_test", "ptest"])
def test_test_labels_reach_a_pilot(panda, tmp_path, label):
    backend = PandaBackend()
    spec = make_spec(tmp_path, {**panda.queue_options(), "prod_source_label": label}, "true")
    panda_id = backend.submit(spec)
    status = wait_for(backend, [ref(spec, panda_id)], lambda s: s.state in FINAL)[panda_id]
    assert status.state is JobState.SUCCEEDED, status


def test_kill_cancels_a_running_job(panda, tmp_path):
    backend = PandaBackend()
    spec = make_spec(tmp_path, panda.queue_options(), "sleep 300")
    panda_id = backend.submit(spec)
    job = ref(spec, panda_id)
    assert wait_for(backend, [job], lambda s: s.native_state == "running")[panda_id].state is JobState.RUNNING
    backend.cancel_many([job])
    status = wait_for(backend, [job], lambda s: s.state in FINAL)[panda_id]
    assert status.state is JobState.CANCELLED, status
    assert "killed by" in status.reason


def test_many_jobs_in_one_submit_and_one_status_call(panda, tmp_path, monkeypatch):
    backend = PandaBackend()
    specs = [make_spec(tmp_path, panda.queue_options(q), f"echo {i}")
             for i, q in enumerate(["HC_TEST_QUEUE", "HC_TEST_QUEUE_2"] * 10)]
    calls: list[str] = []
    client = __import__("pandaclient.Client", fromlist=["Client"])
    for name in ("submitJobs", "getJobStatus"):
        original = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    ids = backend.submit_many(specs)
    assert calls == ["submitJobs"]
    assert all(isinstance(i, str) and i.isdigit() for i in ids) and len(set(ids)) == 20
    refs = [ref(s, i) for s, i in zip(specs, ids, strict=True)]
    calls.clear()
    statuses = backend.poll_many(refs)
    assert calls == ["getJobStatus"]
    assert set(statuses) == set(ids)
    statuses = wait_for(backend, refs, lambda s: s.state in FINAL)
    assert {s.state for s in statuses.values()} == {JobState.SUCCEEDED}


def test_a_refusing_server_is_an_outage_not_a_failed_job(panda, tmp_path):
    backend = PandaBackend()
    # 'managed' needs the production role: validate_options forbids it, so a queue
    # configured behind hcflask's back is the way to see the server itself refuse
    managed = dict(panda.queue_options(), prod_source_label="managed")
    bad = dataclasses.replace(make_spec(tmp_path, panda.queue_options(), "true"), queue_options=managed)
    results = backend.submit_many([bad])
    assert isinstance(results[0], BackendUnavailable), results
    assert "PanDA server is up but submitJobs of 1 job(s) failed" in str(results[0])
    good = make_spec(tmp_path, panda.queue_options(), "true")
    assert isinstance(backend.submit_many([good])[0], str)


@pytest.mark.slow
def test_server_down_is_an_outage_then_everything_resumes(panda, tmp_path):
    backend = PandaBackend()
    spec = make_spec(tmp_path, panda.queue_options(), "sleep 8; echo survived")
    panda_id = backend.submit(spec)
    job = ref(spec, panda_id)
    panda.stop_web()
    try:
        with pytest.raises(BackendUnavailable, match="PanDA server unavailable"):
            backend.poll_many([job])
        with pytest.raises(BackendUnavailable):
            backend.cancel_many([job])
        other = make_spec(tmp_path, panda.queue_options(), "true")
        assert isinstance(backend.submit_many([other])[0], BackendUnavailable)
        assert json.loads((other.workdir / MARKER).read_text())["state"] == "not submitted"
    finally:
        panda.start_web()
    status = wait_for(backend, [job], lambda s: s.state in FINAL, timeout=90)[panda_id]
    assert status.state is JobState.SUCCEEDED, status
    assert (panda.base / "pilot" / panda_id / "stdout").read_text().strip() == "survived"


def test_certificate_problems_are_an_outage(panda, tmp_path):
    stranger = tmp_path / "stranger.pem"  # a certificate from a CA the server does not trust
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=stranger", "-days", "1", "-keyout", str(stranger),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    stranger.write_text((tmp_path / "cert.pem").read_text() + stranger.read_text())
    empty_ca = tmp_path / "no-cas"
    empty_ca.mkdir()
    backend = PandaBackend()
    for options in ({**panda.queue_options(), "proxy": str(stranger)},
                    {**panda.queue_options(), "ca_dir": str(empty_ca)}):
        spec = make_spec(tmp_path, options, "true")
        result = backend.submit_many([spec])[0]
        assert isinstance(result, BackendUnavailable) and "PanDA server unavailable" in str(result), result
        with pytest.raises(BackendUnavailable, match="PanDA server unavailable"):
            backend.poll_many([ref(spec, "1")])


def test_find_by_name_adopts_marked_jobs_and_scans_after_a_crash_mid_call(panda, tmp_path):
    backend = PandaBackend()
    first, second = (make_spec(tmp_path, panda.queue_options(), "true") for _ in range(2))
    ids = backend.submit_many([first, second])
    # fake the one state a real crash leaves that the test cannot time: killed while
    # submitJobs was in flight (a minute ago), so the second job's marker still says "submitting"
    nobody = make_spec(tmp_path, panda.queue_options(), "true")
    for spec in (second, nobody):
        (spec.workdir / MARKER).write_text(json.dumps({"state": "submitting", "after": int(ids[0]) - 1}))
        os.utime(spec.workdir / MARKER, (time.time() - 60, time.time() - 60))
    found = PandaBackend().find_by_name([ref(s, "") for s in (first, second, nobody)])
    assert found == {first.name: ids[0], second.name: ids[1]}


def test_validate_options(tmp_path):
    ok = PandaBackend.validate_options({"site": "Q"})
    assert ok == {"site": "Q", "prod_source_label": "user", "processing_type": "hammercloud"}
    for options, field in [
        ({}, "site"),
        ({"site": "Q", "prod_source_label": "managed"}, "prod_source_label"),
        ({"site": "Q", "server": "http://x:25080"}, "server"),
        ({"site": "Q", "proxy": str(tmp_path / "missing")}, "proxy"),
        ({"site": "Q", "token_file": str(tmp_path)}, "auth_vo"),
        ({"site": "Q", "queue": "x"}, "queue"),
    ]:
        with pytest.raises(OptionError) as err:
            PandaBackend.validate_options(options)
        assert err.value.field == field


def test_no_server_configured_is_an_outage(tmp_path):
    spec = make_spec(tmp_path, {"site": "Q"}, "true")
    assert isinstance(PandaBackend().submit_many([spec])[0], BackendUnavailable)
    with pytest.raises(BackendUnavailable, match="no PanDA server"):
        PandaBackend().poll_many([ref(spec, "1")])
    assert not (spec.workdir / RESULT).exists()

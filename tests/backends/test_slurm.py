"""The Slurm backend against a real single-node cluster (plain: no slurmdbd).

Each test uses few jobs: the node starts only about two jobs a second.
The timeout job is submitted by a module fixture at the start and checked
by the last test, so its minute of walltime overlaps the other tests.
"""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, make_spec, ref, wait_final

from hcflask.backends import BackendUnavailable, OptionError, SubmitError
from hcflask.backends.slurm import SlurmBackend
from hcflask.states import JobState

pytestmark = pytest.mark.slurm


@pytest.fixture()
def backend(slurm: SlurmCluster) -> SlurmBackend:
    return SlurmBackend(slurm.backend_config)


@pytest.fixture(scope="module")
def timeout_job(slurm: SlurmCluster, tmp_path_factory: pytest.TempPathFactory):
    backend = SlurmBackend(slurm.backend_config)
    spec = make_spec(tmp_path_factory.mktemp("timeout"), "hc-test-timeout", "sleep 300", walltime=60)
    return backend, ref(spec, backend.submit(spec))


def test_submit_monitor_success(backend: SlurmBackend, slurm: SlurmCluster, tmp_path: Path,
                                timeout_job: object) -> None:
    spec = make_spec(tmp_path, "hc-test-ok", "echo hc-ok value=42")
    job_id = backend.submit(spec)
    assert job_id.isdigit()
    shown = slurm.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%j|%P|%C").stdout.strip()
    assert shown == "hc-test-ok|debug|1"
    status = wait_final(backend, [ref(spec, job_id)])[job_id]
    assert status.state is JobState.SUCCEEDED
    assert status.native_state == "COMPLETED"
    assert status.exit_code == 0
    assert status.host == slurm.node
    assert (tmp_path / "stdout").read_text() == "hc-ok value=42\n"
    # one squeue per poll, one sacct (-c here) only once the job has left the queue
    assert backend.calls["sbatch"] == 1
    assert backend.calls["sacct"] >= 1
    assert backend.calls["sacct"] <= backend.calls["squeue"]


def test_exit_code_failure_names_stderr(backend: SlurmBackend, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "hc-test-exit3", "echo first >&2; echo 'disk full' >&2; exit 3")
    job_id = backend.submit(spec)
    status = wait_final(backend, [ref(spec, job_id)])[job_id]
    assert status.state is JobState.FAILED
    assert status.native_state == "FAILED"
    assert status.exit_code == 3
    assert status.reason == "exit 3: disk full"


def test_pending_reason_then_cancel_only_pending(backend: SlurmBackend, slurm: SlurmCluster,
                                                tmp_path: Path) -> None:
    held = make_spec(tmp_path / "held", "hc-test-held", "true", extra_args=["--begin=now+1hour"])
    running = make_spec(tmp_path / "run", "hc-test-running", "sleep 30")
    refs = [ref(held, backend.submit(held)), ref(running, backend.submit(running))]
    deadline = time.monotonic() + 30
    while True:
        statuses = backend.poll_many(refs)
        if statuses[refs[1].backend_id].state is JobState.RUNNING or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert statuses[refs[0].backend_id].state is JobState.QUEUED
    assert statuses[refs[0].backend_id].reason == "BeginTime"
    assert statuses[refs[1].backend_id].state is JobState.RUNNING
    calls = sum(backend.calls.values())
    backend.cancel_many(refs)  # cancel_running is false by default: the running job goes on
    assert sum(backend.calls.values()) == calls + 1
    # the engine passes what the job row says (cancel_requested_at), so a restarted service knows it too
    asked = [dataclasses.replace(r, cancel_requested=True) for r in refs]
    statuses = SlurmBackend(slurm.backend_config).poll_many(asked)
    assert statuses[refs[0].backend_id].state is JobState.CANCELLED
    assert statuses[refs[0].backend_id].reason == "cancelled by hcflask"
    assert statuses[refs[1].backend_id].state is JobState.RUNNING
    killer = SlurmBackend({**slurm.backend_config, "cancel_running": True})
    killer.cancel_many(refs[1:])
    status = wait_final(backend, refs[1:])[refs[1].backend_id]
    assert status.state is JobState.CANCELLED
    assert status.reason == "cancelled by admin"  # the job row does not say hcflask asked


def test_out_of_memory(backend: SlurmBackend, tmp_path: Path) -> None:
    """Real: jobacct_gather/linux with OverMemoryKill kills the job (no cgroups in this sandbox,
    so Slurm says FAILED, not OUT_OF_MEMORY; its error file says why, and so does the reason)."""
    payload = "python3 -c 'import time; x = bytearray(400 * 2**20); time.sleep(20)'"
    spec = make_spec(tmp_path, "hc-test-oom", payload, memory_mb=50)
    job_id = backend.submit(spec)
    status = wait_final(backend, [ref(spec, job_id)])[job_id]
    assert status.state is JobState.FAILED
    assert status.reason.startswith("out of memory: ")
    assert "exceeded memory limit" in status.reason


def test_bad_partition_is_a_submit_error(backend: SlurmBackend, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "hc-test-badpart", "true", partition="nope")
    with pytest.raises(SubmitError, match="Invalid partition name specified"):
        backend.submit(spec)
    assert backend.calls["sbatch"] == 1  # a permanent error is not retried


def test_validate_options(slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked by ``sbatch --test-only``: no job is created."""
    config = slurm.backend_config
    before = slurm.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()
    ok = SlurmBackend.validate_options({"partition": "long", "extra_args": ["--exclusive", "--nice=10"]},
                                       config)
    assert ok == {"partition": "long", "extra_args": ["--exclusive", "--nice=10"]}
    cases = [
        ({"partition": "debug", "extra_args": ["--bogus"]}, "extra_args", "not an sbatch option"),
        ({"partition": "debug", "extra_args": ["--exclusive --nice=10"]}, "extra_args", "not an sbatch option"),
        ({"partition": "debug", "extra_args": ["-Jother"]}, "extra_args", "set by hcflask"),
        ({"partition": "debug'"}, "partition", "not a valid Slurm name"),
        ({"partition": "nope"}, "partition", "Invalid partition"),
        ({"partition": "debug", "reservation": "nosuch"}, "reservation", "reservation"),
        ({"partition": "debug", "constraint": "gpu_a100"}, "constraint", "feature"),
        ({}, "partition", "required"),
        ({"partition": "debug", "extra_args": ["--job-name=x"]}, "extra_args", "set by hcflask"),
        ({"partition": "debug", "walltime": "1"}, "walltime", "unknown option"),
    ]
    for options, field, words in cases:
        with pytest.raises(OptionError) as info:
            SlurmBackend.validate_options(options, config)
        assert info.value.field == field, options
        assert words.lower() in info.value.reason.lower(), info.value.reason
    # the engine calls it without a config: $SLURM_CONF is honoured
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    with pytest.raises(OptionError, match="partition"):
        SlurmBackend.validate_options({"partition": "nope"})
    after = slurm.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()
    assert after == before


def test_find_by_name(backend: SlurmBackend, tmp_path: Path) -> None:
    specs = [make_spec(tmp_path / n, n, "true") for n in ("hc-test-find-1", "hc-test-find-2")]
    ids = [backend.submit(s) for s in specs]
    ghost = make_spec(tmp_path / "ghost", "hc-test-never-submitted", "true")
    calls = backend.calls["squeue"]
    found = backend.find_by_name([ref(s) for s in [*specs, ghost]])
    assert found == {"hc-test-find-1": ids[0], "hc-test-find-2": ids[1]}
    assert backend.calls["squeue"] == calls + 1
    wait_final(backend, [ref(s, i) for s, i in zip(specs, ids, strict=True)])


@pytest.mark.slow
def test_controller_outage_then_resume(backend: SlurmBackend, slurm: SlurmCluster, tmp_path: Path) -> None:
    """Every call refused with BackendUnavailable while slurmctld is down, the job finishing
    meanwhile, and everything as before once it is back.

    Each refused call spends Slurm's own connection retries (about 4 s; submit, with its retries and
    name look-ups, about 13 s), so the calls are made side by side, as the engine's ticks do: the
    outage costs the longest one, not their sum (80 s in CI when made one after another)."""
    spec = make_spec(tmp_path / "a", "hc-test-outage", "sleep 4; echo done")
    job = ref(spec, backend.submit(spec))
    late = make_spec(tmp_path / "b", "hc-test-outage-late", "echo late")
    deadline = time.monotonic() + 30  # running before the outage, so it ends during it
    while backend.poll_many([job])[job.backend_id].state is not JobState.RUNNING:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    slurm.stop_controller()
    try:
        def submit_refused() -> float:
            """Seconds until submit gave up (it must, with BackendUnavailable)."""
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                backend.submit(late)
            return time.monotonic() - started

        with ThreadPoolExecutor(max_workers=5) as pool:
            poll = pool.submit(backend.poll_many, [job])
            submit = pool.submit(submit_refused)
            find = pool.submit(backend.find_by_name, [ref(late)])
            cancel = pool.submit(backend.cancel_many, [job])
            # an outage does not block creating a queue, but sbatch still parses the options itself
            valid = pool.submit(SlurmBackend.validate_options, {"partition": "debug"}, slurm.backend_config)
            with pytest.raises(OptionError, match="not an sbatch option"):
                SlurmBackend.validate_options({"partition": "debug", "extra_args": ["--bogus"]},
                                              slurm.backend_config)
            with pytest.raises(BackendUnavailable, match="Unable to contact slurm controller"):
                poll.result()
            assert submit.result() < 60
            for refused in (find, cancel):
                with pytest.raises(BackendUnavailable):
                    refused.result()
            assert valid.result()
        # the job finishes while nobody can ask (its wrapper writes result.json last)
        deadline = time.monotonic() + 60
        while not (spec.workdir / "result.json").exists():
            assert time.monotonic() < deadline, "the job did not finish during the outage"
            time.sleep(0.2)
    finally:
        slurm.start_controller()
    statuses = wait_final(backend, [job])
    assert statuses[job.backend_id].state is JobState.SUCCEEDED
    assert (spec.workdir / "stdout").read_text() == "done\n"
    assert backend.find_by_name([ref(late)]) == {}  # the refused submission created nothing
    late_id = backend.submit(late)
    assert wait_final(backend, [ref(late, late_id)])[late_id].state is JobState.SUCCEEDED


def test_job_forgotten_or_never_seen(backend: SlurmBackend, tmp_path: Path) -> None:
    ghost = make_spec(tmp_path / "ghost", "hc-test-ghost", "true")
    status = backend.poll_many([ref(ghost, "999999")])["999999"]
    assert status.state is JobState.LOST
    assert "999999" in status.reason
    # a job Slurm forgot long ago is judged from the wrapper's own result file
    done = tmp_path / "done"
    done.mkdir()
    (done / "result.json").write_text('{"exit_code": 0, "start": 1, "end": 2, "host": "n1"}')
    old = ref(make_spec(done, "hc-test-old", "true"), "999998")
    status = backend.poll_many([old])["999998"]
    assert (status.state, status.exit_code, status.host) == (JobState.SUCCEEDED, 0, "n1")


def test_missing_result_file_is_left_to_the_engine(slurm: SlurmCluster, tmp_path: Path) -> None:
    """A job whose wrapper writes its result where we cannot see it (here: nowhere).

    The backend keeps no grace timer: it reports what Slurm says, the same
    after a restart, and the engine's ``result_grace_seconds`` (counted from
    the job row) decides when to fail it.
    """
    backend = SlurmBackend(slurm.backend_config)
    spec = make_spec(tmp_path, "hc-test-noresult", "true")
    spec.script.write_text("#!/bin/bash\necho ran on a node that does not see the work dir\n")
    job = ref(spec, backend.submit(spec))
    status = wait_running_or_final(backend, job)
    assert (status.state, status.native_state, status.reason) == (JobState.SUCCEEDED, "COMPLETED", "")
    restarted = SlurmBackend(slurm.backend_config).poll_many([job])[job.backend_id]
    assert (restarted.state, restarted.reason) == (JobState.SUCCEEDED, "")


def wait_running_or_final(backend: SlurmBackend, job, timeout: float = 30):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.poll_many([job])[job.backend_id]
        if status.native_state == "COMPLETED":
            return status
        time.sleep(0.3)
    raise AssertionError("job did not complete")


def test_fallback_sources(backend: SlurmBackend, slurm: SlurmCluster, tmp_path: Path) -> None:
    """Without slurmdbd: ``sacct -c`` (jobcomp log), or ``scontrol show job`` when told so."""
    spec = make_spec(tmp_path, "hc-test-fallback", "exit 2")
    job = ref(spec, backend.submit(spec))
    status = wait_final(backend, [job])[job.backend_id]
    assert backend.accounting == "jobcomp"
    assert (status.state, status.exit_code) == (JobState.FAILED, 2)
    scontrol = SlurmBackend({**slurm.backend_config, "accounting": "none"})
    again = scontrol.poll_many([job])[job.backend_id]
    assert scontrol.calls["scontrol"] == 1 and scontrol.calls["sacct"] == 0
    assert (again.state, again.exit_code, again.reason) == (status.state, 2, "exit 2")


def test_discover_queues(backend: SlurmBackend) -> None:
    queues = {q["name"]: q for q in backend.discover_queues()}
    assert set(queues) == {"debug", "long"}
    assert queues["debug"]["time_limit"] == 3600 and queues["debug"]["default"] is True
    assert queues["long"]["time_limit"] == 86400 and queues["long"]["options"] == {"partition": "long"}
    assert backend.calls["sinfo"] == 1


def test_timeout(timeout_job) -> None:  # noqa: ANN001 - the module fixture's tuple
    backend, job = timeout_job
    status = wait_final(backend, [job], timeout=150, interval=2)[job.backend_id]
    assert status.state is JobState.FAILED
    assert status.native_state == "TIMEOUT"
    assert status.reason == "timeout after 00:01:00"

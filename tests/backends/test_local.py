"""The local backend against real processes."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from hcflask.backends import OptionError, jobscript
from hcflask.backends.base import JobRef, JobSpec, Resources
from hcflask.backends.local import LocalBackend, signal_sessions
from hcflask.states import JobState


def spec(tmp_path: Path, name: str, script: str, queue: str = "q", walltime: int | None = None) -> JobSpec:
    workdir = tmp_path / name
    text = jobscript.render(payload=script, env={"HC_JOB_NAME": name}, workdir=workdir, walltime=walltime)
    path = jobscript.write(workdir, text)
    return JobSpec(0, name, queue, {"slots": 1}, workdir, path, Resources())


def ref(s: JobSpec) -> JobRef:
    return JobRef(s.name, s.name, s.queue, s.queue_options, s.workdir)


def poll_until(backend: LocalBackend, refs: list[JobRef], done: set[JobState], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        statuses = backend.poll_many(refs)
        if all(s.state in done for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.1)


def test_slots_queue_jobs_fifo_and_results_are_read(tmp_path: Path) -> None:
    backend = LocalBackend({})
    specs = [spec(tmp_path, f"j{i}", f"sleep 0.5; echo out{i}; exit {i}") for i in range(3)]
    refs = [ref(s) for s in specs]
    assert [backend.submit(s) for s in specs] == ["j0", "j1", "j2"]
    first = poll_until(backend, refs[:1], {JobState.RUNNING})
    first.update(backend.poll_many(refs[1:]))
    assert [first[r.backend_id].state for r in refs] == [JobState.RUNNING, JobState.QUEUED, JobState.QUEUED]
    assert first["j1"].reason == "waiting for a free slot"
    final = poll_until(backend, refs, {JobState.SUCCEEDED, JobState.FAILED})
    assert [final[r.backend_id].exit_code for r in refs] == [0, 1, 2]
    assert final["j0"].state is JobState.SUCCEEDED and final["j2"].state is JobState.FAILED
    assert (tmp_path / "j1" / "stdout").read_text() == "out1\n"
    result = jobscript.read_result(tmp_path / "j2")
    assert result and result["exit_code"] == 2 and result["end"] >= result["start"]


def test_a_slot_is_refilled_when_a_job_ends_not_at_the_next_poll(tmp_path: Path) -> None:
    """One slot, five short jobs, no poll at all: each starts as the one before it ends."""
    backend = LocalBackend({})
    specs = [spec(tmp_path, f"s{i}", f"echo run{i}") for i in range(5)]
    for s in specs:
        backend.submit(s)
    deadline = time.monotonic() + 20
    while not all((s.workdir / jobscript.RESULT).is_file() for s in specs):
        assert time.monotonic() < deadline, [s.name for s in specs if not (s.workdir / jobscript.RESULT).is_file()]
        time.sleep(0.05)
    starts = [jobscript.read_result(s.workdir)["start"] for s in specs]
    ends = [jobscript.read_result(s.workdir)["end"] for s in specs]
    assert starts == sorted(starts) and all(ends[i] <= starts[i + 1] for i in range(4))  # one at a time, FIFO
    final = backend.poll_many([ref(s) for s in specs])
    assert {st.state for st in final.values()} == {JobState.SUCCEEDED}


def test_without_pidfds_polls_start_and_finish_the_jobs(tmp_path: Path) -> None:
    """Where the kernel has no pidfd (before 5.3, or a seccomp filter refuses it) there is no thread:
    each poll starts waiting jobs and reads a running job's work dir to see it end.  This kernel has
    pidfds, so the backend is told it has none, as its own check would find on such a node."""
    backend = LocalBackend({})
    backend._view.watching = False
    specs = [spec(tmp_path, f"n{i}", f"echo run{i}") for i in range(3)]
    for s in specs:
        backend.submit(s)
    final = poll_until(backend, [ref(s) for s in specs], {JobState.SUCCEEDED, JobState.FAILED})
    assert {st.state for st in final.values()} == {JobState.SUCCEEDED}
    assert [(s.workdir / "stdout").read_text() for s in specs] == ["run0\n", "run1\n", "run2\n"]


def test_two_views_of_one_job_start_it_once(tmp_path: Path) -> None:
    """Two backends (two processes' views, as when the scheduler's role moves) that both see a
    queued job start its wrapper once: the launch is claimed with an exclusive file."""
    runs = tmp_path / "runs"
    s = spec(tmp_path, "once", f"echo ran >> {runs}")
    first, second = LocalBackend({}), LocalBackend({})
    first.submit(s)
    second.poll_many([ref(s)])
    for backend in (first, second):
        final = poll_until(backend, [ref(s)], {JobState.SUCCEEDED, JobState.FAILED})
        assert final["once"].state is JobState.SUCCEEDED
    assert runs.read_text() == "ran\n"


def test_cancel_running_and_queued(tmp_path: Path) -> None:
    backend = LocalBackend({})
    """The running job's payload (with a walltime, as the service runs it) and its children end
    too; the queued one never starts."""
    specs = [spec(tmp_path, f"c{i}", "sleep 30 & echo $! > child; wait", walltime=600) for i in range(2)]
    refs = [ref(s) for s in specs]
    for s in specs:
        backend.submit(s)
    poll_until(backend, refs[:1], {JobState.RUNNING})
    deadline = time.monotonic() + 10
    while not (specs[0].workdir / "child").is_file() or not (specs[0].workdir / "child").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    backend.cancel_many(refs)
    final = poll_until(backend, refs, {JobState.CANCELLED}, timeout=10)
    assert {s.state for s in final.values()} == {JobState.CANCELLED}
    child = int((specs[0].workdir / "child").read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() and not (specs[1].workdir / "pid").exists()


def test_walltime_and_unknown_jobs(tmp_path: Path) -> None:
    backend = LocalBackend({})
    s = spec(tmp_path, "w", "sleep 20", walltime=1)
    backend.submit(s)
    final = poll_until(backend, [ref(s)], {JobState.FAILED})
    assert final["w"].exit_code == jobscript.TIMEOUT_EXIT
    assert jobscript.read_result(tmp_path / "w")["timeout"] is True
    ghost = JobRef("ghost", "ghost", "q", {}, tmp_path / "ghost")
    assert backend.poll_many([ghost])["ghost"].state is JobState.LOST
    assert backend.find_by_name([ghost, JobRef("", "w", "q", {}, tmp_path / "w")]) == {"w": "w"}


def test_a_killed_job_is_failed_not_running(tmp_path: Path) -> None:
    import signal

    backend = LocalBackend({})
    s = spec(tmp_path, "k", "sleep 30")
    backend.submit(s)
    poll_until(backend, [ref(s)], {JobState.RUNNING})
    pid = int((tmp_path / "k" / "pid").read_text().split()[0])
    signal_sessions([pid], signal.SIGKILL)  # the wrapper, its payload and the payload's children
    final = poll_until(backend, [ref(s)], {JobState.FAILED}, timeout=10)
    assert final["k"].reason == "the job's process ended without writing a result"


def test_options_are_validated() -> None:
    assert LocalBackend.validate_options({"slots": 3}) == {"slots": 3}
    for bad in (0, "3", 2.5, True, 10**23):
        with pytest.raises(OptionError) as info:
            LocalBackend.validate_options({"slots": bad})
        assert info.value.field == "slots"
    with pytest.raises(OptionError, match="unknown option"):
        LocalBackend.validate_options({"partition": "x"})


def test_container_payload_fails_clearly_without_a_runtime(tmp_path: Path) -> None:
    import shutil

    payload = jobscript.payload_script({"image": "/images/x.sif", "command": "echo hi", "resources": {"gpus": 1}})
    assert "exec --nv /images/x.sif bash -c 'echo hi'" in payload
    tools = tmp_path / "bin"  # a PATH with the wrapper's tools but no apptainer/singularity
    tools.mkdir()
    for tool in ("bash", "mkdir", "hostname", "date", "cat", "mv", "rm", "mkfifo", "head", "tail", "wc"):
        (tools / tool).symlink_to(shutil.which(tool))
    backend = LocalBackend({})
    workdir = tmp_path / "ct"
    text = jobscript.render(payload=payload, env={"PATH": str(tools)}, workdir=workdir)
    s = JobSpec(0, "ct", "q", {}, workdir, jobscript.write(workdir, text), Resources())
    backend.submit(s)
    final = poll_until(backend, [ref(s)], {JobState.FAILED, JobState.SUCCEEDED})
    assert final["ct"].state is JobState.FAILED
    assert final["ct"].exit_code == jobscript.NO_RUNTIME_EXIT
    assert "no container runtime (apptainer or singularity)" in (workdir / "stderr").read_text()

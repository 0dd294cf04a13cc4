"""The job wrapper run by bash itself: the quick way for a short payload (its output still in
the pipes, one process to keep it) and the keepers for a long one give the same files."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from hcflask.backends import jobscript


def run(tmp_path: Path, payload: str, *, walltime: int | None = None, name: str = "job",
        workdir_ahead: bool = True) -> tuple[Path, dict]:
    """Run a wrapper to its end; ``workdir_ahead`` False leaves the pipes for the wrapper to make."""
    workdir = tmp_path / name
    text = jobscript.render(payload=payload, env={"HC_JOB_NAME": name}, workdir=workdir, walltime=walltime)
    if workdir_ahead:
        script = jobscript.write(workdir, text)
    else:
        script = tmp_path / f"{name}.sh"
        script.write_text(text)
    subprocess.run(["bash", str(script)], check=False, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = jobscript.read_result(workdir)
    assert result is not None
    return workdir, result


def test_a_short_payload_keeps_both_streams_whole(tmp_path: Path) -> None:
    workdir, result = run(tmp_path, 'echo hc-ok; printf "warn\\n" >&2; exit 3')
    assert (workdir / "stdout").read_text() == "hc-ok\n" and (workdir / "stderr").read_text() == "warn\n"
    assert result["exit_code"] == 3 and result["timeout"] is False and result["stdout_cut"] is False
    assert jobscript.cpu_seconds(result) is not None


def test_silent_streams_are_empty_files(tmp_path: Path) -> None:
    workdir, result = run(tmp_path, "true")
    assert (workdir / "stdout").read_text() == "" and (workdir / "stderr").read_text() == ""
    assert result["exit_code"] == 0


def test_more_than_a_pipe_holds_is_kept_whole_below_the_cap(tmp_path: Path) -> None:
    """200 kB from a payload that would otherwise end at once: it waits on its full pipe until
    the keepers start, and not a byte is lost or reordered."""
    payload = 'for i in $(seq 1 20000); do echo "line $i"; done; echo tail-marker >&2'
    workdir, result = run(tmp_path, payload)
    lines = (workdir / "stdout").read_text().splitlines()
    assert lines == [f"line {i}" for i in range(1, 20001)]
    assert (workdir / "stderr").read_text() == "tail-marker\n" and result["stdout_cut"] is False


def test_the_wrapper_makes_its_pipes_where_the_work_dir_was_not_prepared(tmp_path: Path) -> None:
    workdir, result = run(tmp_path, "echo made-here", workdir_ahead=False)
    assert (workdir / "stdout").read_text() == "made-here\n" and result["exit_code"] == 0


def test_service_removes_the_pipes_a_short_job_leaves(tmp_path: Path) -> None:
    workdir, _ = run(tmp_path, "echo x")
    assert sorted(p.name for p in workdir.glob("*.pipe")) == sorted(jobscript.PIPES)
    jobscript.tidy(workdir)
    assert not list(workdir.glob("*.pipe")) and (workdir / "stdout").read_text() == "x\n"


def test_a_payload_that_closes_its_descriptors_still_ends_on_time(tmp_path: Path) -> None:
    """Closing every descriptor above stderr takes away the end-of-file the wrapper waits on:
    it then looks once a second, and the job ends long before its walltime."""
    payload = ('for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done\n'
               "sleep 1.2; echo closed-and-done")
    started = time.monotonic()
    workdir, result = run(tmp_path, payload, walltime=30)
    assert time.monotonic() - started < 10
    assert result["exit_code"] == 0 and result["timeout"] is False
    assert (workdir / "stdout").read_text() == "closed-and-done\n"


def test_walltime_stops_the_payloads_children_too(tmp_path: Path) -> None:
    payload = "sleep 60 & echo $! > child; wait"
    workdir, result = run(tmp_path, payload, walltime=1)
    assert result["timeout"] is True and result["exit_code"] == jobscript.TIMEOUT_EXIT
    child = int((workdir / "child").read_text())
    assert not _alive(child)


def test_term_to_the_wrapper_reaches_the_payloads_group(tmp_path: Path) -> None:
    """What a cancel does to a local job (TERM to the wrapper's session) stops the payload's
    own process group too, children included."""
    workdir = tmp_path / "term"
    jobscript.write(workdir, jobscript.render(payload="sleep 60 & echo $! > child; wait", env={},
                                              workdir=workdir))
    proc = subprocess.Popen(["bash", str(workdir / jobscript.WRAPPER)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (workdir / "child").is_file() or not (workdir / "child").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, 15)
    assert proc.wait(timeout=10) != 0
    child = int((workdir / "child").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

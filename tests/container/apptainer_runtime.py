"""The unprivileged Apptainer runtime and the small HTTP and /proc helpers of the contract tests.

Why a module of its own: conftest.py holds only fixtures and hooks, the test
modules import these names directly (as tests/backends does with
slurm_cluster).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT_SCRIPT = REPO / "container" / "apptainer-root.sh"
BUILD_SCRIPT = REPO / "container" / "build.sh"
RUN_USER = "hcuser"
RUN_UID = 1500
#: figures measured by the tests, printed at the end of the session
FIGURES: dict[str, str] = {}


@dataclass
class Runtime:
    """Runs apptainer as the unprivileged user: natively, or inside the sid root (``in_root``).

    In the sid root the host paths the container needs (the work folder, and
    ``host_paths``) are bound in at their own paths first.
    """

    work: Path
    uid: int
    in_root: bool = False
    home: Path = field(default_factory=Path.home)
    host_paths: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        if not self.in_root:
            return ["apptainer", "--quiet", *args]
        binds = [arg for path in (str(self.work), *self.host_paths) for arg in ("--bind", path)]
        return [str(ROOT_SCRIPT), "exec", "--user", RUN_USER, *binds, "--cwd", str(self.work), "--",
                "apptainer", "--quiet", *args]

    def with_host_paths(self, *paths: str) -> Runtime:
        return replace(self, host_paths=(*self.host_paths, *paths))

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False)

    def popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                self.argv(*args), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def folder(self, name: str) -> Path:
        """An empty folder that belongs to the user (an instance folder to bind)."""
        path = self.work / name
        path.mkdir()
        os.chown(path, self.uid, self.uid)
        return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body; a refused connection raises OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http_ok(url: str, deadline: float, proc: subprocess.Popen[bytes] | None = None,
                 log: Path | None = None) -> float:
    """Seconds until ``url`` answers 200; fails if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            pytest.fail(f"the service exited with {proc.returncode} before answering:\n{tail}")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} gave no 200 within {deadline} s")


def process_tree_memory_kib(pid: int) -> tuple[int, int]:
    """Resident and proportional (shared pages split) memory of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    rss = pss = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in rollup:
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group started by Runtime.popen: TERM, then KILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def hc_in(host: Runtime, image: Path, common: Sequence[str], *args: str) -> str:
    """``hc ARGS`` run from the image (``apptainer run``): its output; a failure shows both streams."""
    done = host.run("run", *common, str(image), *args)
    assert done.returncode == 0, f"hc {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def first_job(host: Runtime, image: Path, common: Sequence[str], log: Path,
              within: float) -> tuple[list[dict[str, Any]], float]:
    """Serve the instance from the image (1 s ticks) until its first job ended: the jobs as the API
    lists them, and the seconds from the service answering to that job's end."""
    port = free_port()
    proc = host.popen("run", *common, "--env", f"HC_PORT={port}", "--env", "HC_TICK_SECONDS=1", str(image), log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(base + "/healthz", 120, proc, log)
        start = time.monotonic()
        while True:
            status, body = http_get(base + "/api/v1/jobs")
            jobs = json.loads(body)["items"] if status == 200 else []
            if jobs and jobs[0]["state"] in ("succeeded", "failed"):
                return jobs, time.monotonic() - start
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() - start < within, f"no job ended: {jobs}\n{log.read_text()[-3000:]}"
            time.sleep(1)
    finally:
        stop(proc)

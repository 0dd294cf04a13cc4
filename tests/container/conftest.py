"""Fixtures for the container contract: the real Apptainer, the built image, an unprivileged user.

Why: the contract is about what a user without root sees when running hc.sif.
CI runs as root on a host whose libc is too old for Apptainer, so as root every
command runs inside the Debian-sid root of container/apptainer-root.sh as the
unprivileged user ``hcuser``; as a non-root user with ``apptainer`` on PATH (an
HPC login node) the commands run natively as that user.  A missing Apptainer
fails these tests loudly; it never skips them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT_SCRIPT = REPO / "container" / "apptainer-root.sh"
BUILD_SCRIPT = REPO / "container" / "build.sh"
RUN_USER = "hcuser"
RUN_UID = 1500
#: figures measured by the tests, printed at the end of the session
FIGURES: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "container: builds hc.sif and runs it with the real apptainer")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<34} {value}")


@dataclass
class Runtime:
    """Runs apptainer as the unprivileged user, natively or inside the sid root."""

    work: Path
    uid: int
    prefix: list[str] = field(default_factory=list)
    home: Path = field(default_factory=Path.home)

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, "apptainer", "--quiet", *args]

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


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    work = tmp_path_factory.mktemp("container")
    if os.geteuid() != 0:
        if shutil.which("apptainer") is None:
            pytest.fail("no apptainer on PATH: the container contract needs the real runtime")
        return Runtime(work, os.getuid())
    made = subprocess.run([ROOT_SCRIPT, "ensure"], capture_output=True, text=True, timeout=900, check=False)
    assert made.returncode == 0, f"Debian-sid root with Apptainer failed:\n{made.stderr}"
    subprocess.run([ROOT_SCRIPT, "adduser", RUN_USER, str(RUN_UID)], check=True, timeout=60)
    os.chmod(work, 0o755)  # noqa: S103 - the unprivileged user reads the image in it
    prefix = [str(ROOT_SCRIPT), "exec", "--user", RUN_USER, "--bind", str(work), "--cwd", str(work), "--"]
    root = Path(os.environ.get("HC_APPTAINER_ROOT", "/var/tmp/hcflask-apptainer-root"))
    return Runtime(work, RUN_UID, prefix, home=root / "home" / RUN_USER)


@pytest.fixture(scope="session")
def image(runtime: Runtime) -> Path:
    """hc.sif built from hc.def by container/build.sh, the documented one command."""
    sif = runtime.work / "hc.sif"
    start = time.monotonic()
    built = subprocess.run([BUILD_SCRIPT, str(sif)], capture_output=True, text=True, timeout=900, check=False)
    assert built.returncode == 0, f"build.sh failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    FIGURES["build time (wheelhouse + image)"] = f"{time.monotonic() - start:.0f} s"
    FIGURES["image size"] = f"{sif.stat().st_size / 2**20:.1f} MiB"
    return sif


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


def wait_http_ok(url: str, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Seconds until ``url`` answers 200; fails if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the service exited with {proc.returncode} before answering")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} gave no 200 within {deadline} s")


def process_tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, from /proc."""
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
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group started by Runtime.popen: TERM, then KILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)

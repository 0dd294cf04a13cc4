"""A real ``hc serve`` in its own process group, for the tests and benchmarks
that need real processes: reloads (HUP), kill -9, two hosts.

The scheduler worker is found the way an admin would: the pid in the
instance lock file, and the "scheduler started/stopped (pid N)" lines of the
service's log.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

CONFIG = """secret_key = "service-test"
instance_name = "{instance_name}"
host_name = "{host_name}"
{extra_top}
[scheduler]
core_seconds = 1
submission_seconds = 1
monitor_seconds = 1
actions_seconds = 0.5
lock_retry_seconds = 0.5
stale_seconds = 20

[hosts]
heartbeat_seconds = 1
lease_seconds = {lease}
adopt_after = {adopt_after}

[jobs]
result_grace_seconds = 0
{extra}
"""


def hc() -> list[str]:
    beside = Path(sys.executable).with_name("hc")
    found = str(beside) if beside.exists() else shutil.which("hc")
    assert found, "the hc command is not installed (pip install -e .)"
    return [found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(instance: Path, host_name: str = "testhost", lease: float = 5, adopt_after: float = 600,
                 extra: str = "", extra_top: str = "", instance_name: str = "") -> None:
    instance.mkdir(parents=True, exist_ok=True)
    name = instance_name or "s" + re.sub(r"[^a-z0-9]", "", instance.parent.name.lower())[-8:]
    (instance / "hc.toml").write_text(CONFIG.format(
        host_name=host_name, lease=lease, adopt_after=adopt_after, extra=extra, extra_top=extra_top,
        instance_name=name))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Served:
    """One ``hc serve`` (gunicorn master and workers) on a free port."""

    def __init__(self, instance: Path, workers: int = 2, env: Mapping[str, str] | None = None) -> None:
        self.instance = instance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = instance.parent / f"serve-{instance.name}-{self.port}.log"
        self.env = {**os.environ, "HC_INSTANCE": str(instance), "HC_LOG_LEVEL": "INFO", **(env or {})}
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Served:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*hc(), "serve", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def holder(self) -> int | None:
        """The pid in the instance lock file (the last worker that took it)."""
        try:
            return int((self.instance / "scheduler.lock").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def schedulers(self) -> set[int]:
        """Live pids that logged "scheduler started" and not "scheduler stopped" since."""
        running: set[int] = set()
        for what, pid in re.findall(r"scheduler (started|stopped) \(pid (\d+)\)", self.text()):
            (running.add if what == "started" else running.discard)(int(pid))
        return {pid for pid in running if alive(pid)}

    def health(self) -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{self.url}/healthz", timeout=5)
        return response.status_code, response.json()

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, f"hc serve exited:\n{self.tail()}"
            try:
                value = condition()
            except requests.RequestException:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout:.0f} s\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill9(self) -> None:
        """kill -9 of gunicorn and its workers; local jobs live in their own sessions and go on."""
        os.killpg(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


FAKE_SLURM = {
    # --test-only answers at once; a submission gets the next id from a counter file
    "sbatch": """#!/bin/bash
for a in "$@"; do [ "$a" = --test-only ] && exit 0; done
n=$(( $(cat "$FAKE_DIR/next" 2>/dev/null || echo 100) + 1 )); echo $n > "$FAKE_DIR/next"; echo $n
""",
    # the slow command: says it started (a barrier for the test), then hangs for $FAKE_SLEEP seconds
    "squeue": """#!/bin/bash
touch "$FAKE_DIR/squeue.started"; sleep "${FAKE_SLEEP:-6}"; rm -f "$FAKE_DIR/squeue.started"
""",
    "sacct": "#!/bin/bash\nexit 0\n",
    "scancel": "#!/bin/bash\nexit 0\n",
    "scontrol": "#!/bin/bash\nexit 0\n",
    "sinfo": "#!/bin/bash\nexit 0\n",
}


def fake_slurm(folder: Path) -> Path:
    """Real commands on disk that answer like a slow Slurm (a test double for a hung controller)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in FAKE_SLURM.items():
        path = folder / name
        path.write_text(body)
        path.chmod(0o755)
    return folder


class Hanging:
    """A webhook that accepts connections and never answers, until told to answer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.answer = threading.Event()
        self.held: list[socket.socket] = []
        self.answered = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.answer.is_set():
                self.held.append(conn)
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            conn.close()
            self.answered += 1

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Relay:
    """A Unix-socket relay in front of PostgreSQL that can stop forwarding: a network cut
    between one host and the database that leaves its TCP sessions open (no iptables).

    It listens in its own folder as ``.s.PGSQL.5432``, so a URL with ``host=<folder>``
    goes through it.  :meth:`pause` stops moving bytes both ways (and answering new
    connections); the connections stay open, so the host's driver just waits, as it
    would for a cut cable.  :meth:`resume` moves the bytes again, and an upstream
    connection the server ended meanwhile is then closed downstream too.
    """

    def __init__(self, upstream: Path, folder: Path) -> None:
        self.upstream = str(upstream / ".s.PGSQL.5432")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.flowing = threading.Event()
        self.flowing.set()
        self.closing = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(folder / ".s.PGSQL.5432"))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._open, args=[client], daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        self.flowing.wait()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.connect(self.upstream)
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=[source, sink], daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self.closing:
                self.flowing.wait()
                data = source.recv(65536)
                self.flowing.wait()
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass  # one side is gone: close both below
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closing = True
        self.flowing.set()
        self.sock.close()

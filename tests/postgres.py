"""A private, throw-away PostgreSQL server for the tests (Debian's postgresql).

``initdb`` in a temporary folder, listening only on a Unix socket in that
folder, stopped at the end.  initdb and postgres refuse to run as root, so
as root they run as the ``postgres`` user the Debian package creates.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

INSTALL = ".ci/install-postgres.sh"


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing() -> str:
    """Why the server cannot be started here ('' if it can)."""
    if bin_dir() is None:
        return f"PostgreSQL server binaries not installed (run {INSTALL})"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is needed to start PostgreSQL as root"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install .[postgres])"
    return ""


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.socket = base / "socket"

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        """Start the server, running initdb first unless ``base`` already holds one (a kept bench month)."""
        self.base.chmod(0o777)
        self.socket.mkdir(mode=0o777, exist_ok=True)
        self.socket.chmod(0o777)
        tools = bin_dir()
        assert tools is not None
        if not self.data.exists():
            self._run(str(tools / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self._run(str(tools / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                  "-o", f"-c listen_addresses='' -k {self.socket} -c fsync=off", "start")

    def stop(self) -> None:
        tools = bin_dir()
        if tools is not None and self.data.exists():
            self._run(str(tools / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket}"

    def create_database(self, name: str = "") -> str:
        """A fresh database (``name`` or a unique one); returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"hc_{time.monotonic_ns()}"
        with psycopg.connect(f"host={self.socket} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

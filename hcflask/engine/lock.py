"""Locks that keep the ticks single.

* :class:`InstanceLock` -- one scheduler per instance folder, however many
  gunicorn workers serve it: an advisory ``flock`` held for the life of the
  process, dropped by the kernel when the process dies (even by kill -9),
  so a restarted worker takes over without stale-lock clean-up.
* :class:`CoreLock` -- one core role per database when several hosts share
  PostgreSQL.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError


class LockUnsupported(RuntimeError):
    """The filesystem of the instance folder cannot hold a file lock."""


class InstanceLock:
    """See the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""
        if self._fh is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        except OSError as exc:
            fh.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise LockUnsupported(
                f"{self.path}: this filesystem does not support file locks ({exc.strerror}); keep the "
                "instance folder (database and lock) on a local disk and put only the job work dirs on "
                "the shared filesystem with [paths] jobs") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None


class CoreLock:
    """The core role: one process per database runs the core tick.

    On PostgreSQL it is a session advisory lock held on a dedicated
    connection, so several hosts can share one database and the first to
    ask becomes the core; if it dies its connection closes and the next
    ``acquire`` elsewhere wins.  On SQLite the instance lock already makes
    the one scheduler the core.  The connection runs in autocommit, so it
    never sits "idle in transaction" while it holds the role.
    """

    KEY = 0x6863666C  # "hcfl"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        """True while this process holds the core role (tries to take it if not)."""
        if not self.shared:
            return True
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                self._connection = None
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.KEY}).scalar()
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    @property
    def held(self) -> bool:
        return not self.shared or self._connection is not None

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.KEY})
            except DBAPIError:
                pass  # the connection is gone, and the lock with it
            self._connection.close()
            self._connection = None

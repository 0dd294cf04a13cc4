"""The lock that keeps the scheduler single per instance folder.

:class:`InstanceLock` -- one scheduler per instance folder, however many
gunicorn workers serve it: an advisory ``flock`` held for the life of the
process, dropped by the kernel when the process dies (even by kill -9), so a
restarted worker takes over without stale-lock clean-up.  The core role
across hosts is a lease in the database (:mod:`hcflask.engine.service.corelease`).
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO


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

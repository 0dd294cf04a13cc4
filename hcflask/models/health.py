"""What the scheduler process tells the other processes: tick heartbeats
and backend outages.  In the database, because the web may be served by
another gunicorn worker (or host) than the one running the scheduler."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model
from hcflask.models.common import iso


class TickRun(Model):
    """The last run of one tick."""

    __tablename__ = "tick_run"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str] = mapped_column(Text, default="")

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "pid": self.pid, "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at), "seconds": round(self.seconds, 3), "error": self.error,
        }


class BackendHealth(Model):
    """Whether a backend answered at its last call, and since when it has not."""

    __tablename__ = "backend_health"

    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    available: Mapped[bool] = mapped_column(default=True)
    error: Mapped[str] = mapped_column(Text, default="")
    down_since: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "available": self.available, "error": self.error,
            "down_since": iso(self.down_since), "checked_at": iso(self.checked_at),
        }

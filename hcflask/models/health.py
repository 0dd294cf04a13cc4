"""What the scheduler process tells the other processes: host leases, tick
heartbeats and backend outages, each keyed by host.  In the database,
because the web may be served by another gunicorn worker (or host) than the
one running the scheduler."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model
from hcflask.models.common import iso


class Host(Model):
    """One ``hc serve`` service (its ``host_name``) and its heartbeat lease.

    ``service_id`` is chosen by the gunicorn master, so all workers of one
    service share it; a second service with the same name is refused while
    the lease is live.  A host whose lease ran out is dead: the core alerts
    and, after ``[hosts] adopt_after``, a live host adopts its tests.
    """

    __tablename__ = "host"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64), default="")
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    #: the core role was held here at the last heartbeat
    core: Mapped[bool] = mapped_column(default=False)
    #: this host's clock minus the database's at its last heartbeat, in seconds (leases use the
    #: database's clock, so an offset changes nothing but is shown on /healthz and hc doctor)
    clock_offset: Mapped[float] = mapped_column(default=0.0, server_default="0")

    def live(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def to_dict(self, now: datetime) -> dict[str, Any]:
        age = (now - self.heartbeat_at).total_seconds() if self.heartbeat_at else None
        return {
            "name": self.name, "pid": self.pid, "live": self.live(now), "core": self.core,
            "started_at": iso(self.started_at), "heartbeat_at": iso(self.heartbeat_at),
            "heartbeat_age_seconds": None if age is None else round(age, 1), "lease_until": iso(self.lease_until),
            "clock_offset_seconds": round(self.clock_offset or 0.0, 1),
        }


class TickRun(Model):
    """The last run of one tick on one host."""

    __tablename__ = "tick_run"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str] = mapped_column(Text, default="")

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        age = (now - self.finished_at).total_seconds() if now and self.finished_at else None
        return {
            "host": self.host, "pid": self.pid, "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at), "seconds": round(self.seconds, 3), "error": self.error,
            "age_seconds": None if age is None else round(age, 1),
        }


class BackendHealth(Model):
    """Whether a backend answered a host at its last call, and since when it has not."""

    __tablename__ = "backend_health"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    available: Mapped[bool] = mapped_column(default=True)
    error: Mapped[str] = mapped_column(Text, default="")
    down_since: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "backend": self.backend, "available": self.available, "error": self.error,
            "down_since": iso(self.down_since), "checked_at": iso(self.checked_at),
        }


class CoreLease(Model):
    """The core role: one row (``id`` 1), held by one service until ``lease_until``.

    A lease on the database's clock rather than a session lock, so a core that
    pauses (SIGSTOP, a frozen VM, a cut network with its TCP session still
    open) loses the role when its lease runs out: any live host then takes
    it with a compare-and-set that bumps ``epoch``, and every write of the old
    core's tick is refused by :mod:`hcflask.engine.service.corelease`.
    """

    __tablename__ = "core_lease"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder: Mapped[str] = mapped_column(String(255), default="")
    service_id: Mapped[str] = mapped_column(String(64), default="")
    #: the fencing token: grows by one at each change of holder (never on a renewal)
    epoch: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None]
    taken_at: Mapped[datetime | None]
    renewed_at: Mapped[datetime | None]

    def to_dict(self, now: datetime) -> dict[str, Any]:
        left = (self.lease_until - now).total_seconds() if self.lease_until else None
        return {"holder": self.holder or None, "epoch": self.epoch, "live": bool(left and left > 0),
                "lease_until": iso(self.lease_until), "lease_left_seconds": None if left is None else round(left, 1),
                "taken_at": iso(self.taken_at), "renewed_at": iso(self.renewed_at)}

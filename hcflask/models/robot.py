"""What the robot decides and remembers: its switch, its event log and alerts
(the performance bands: :mod:`hcflask.models.band`).

The queue status history (``QueueEvent``) stays the record of every status
change; :class:`RobotEvent` adds what the robot did around it (alerts,
switch flips, the outcome of each configured action), so a failing webhook
is visible next to the exclusion it was about and never loses it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model, db
from hcflask.models.common import iso, utcnow

ALERT_KINDS = ("robot", "outage", "backend", "performance", "host", "core")


class RobotState(Model):
    """One row (id 1): the global auto-exclusion switch and the last pass."""

    __tablename__ = "robot_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    changed_by: Mapped[str] = mapped_column(String(128), default="")
    changed_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    last_run_at: Mapped[datetime | None]
    last_run_seconds: Mapped[float] = mapped_column(default=0.0)
    #: per queue: verdict, rule, reason, outcome strings per template
    last_summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: highest JobMetric.id the bands have looked at
    metric_watermark: Mapped[int] = mapped_column(default=0)

    @classmethod
    def get(cls) -> RobotState:
        row = db.session.get(cls, 1)
        if row is None:
            row = cls(id=1, enabled=True, last_summary={}, metric_watermark=0)
            db.session.add(row)
            db.session.flush()
        return row

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled, "changed_by": self.changed_by, "changed_at": iso(self.changed_at),
            "reason": self.reason, "last_run_at": iso(self.last_run_at),
            "last_run_seconds": round(self.last_run_seconds, 4),
        }


class RobotEvent(Model):
    """One line of the robot's log: exclude, recover, switch, alert_open,
    alert_update, alert_close, action (ok or failed)."""

    __tablename__ = "robot_event"
    __table_args__ = (Index("ix_robot_event_kind_time", "kind", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str | None] = mapped_column(String(128), index=True)
    backend: Mapped[str | None] = mapped_column(String(32))
    rule: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128), default="robot")
    message: Mapped[str] = mapped_column(Text, default="")
    job_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"))
    #: for ``action`` rows: the event the action was run for
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("robot_event.id"))
    ok: Mapped[bool] = mapped_column(default=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": iso(self.time), "kind": self.kind, "queue": self.queue,
            "backend": self.backend, "rule": self.rule, "actor": self.actor, "message": self.message,
            "job_ids": self.job_ids, "alert": self.alert_id, "parent": self.parent_id, "ok": self.ok,
        }


class Alert(Model):
    """Something a human should look at; open until ``closed_at``.

    ``key`` identifies what the alert is about (``outage``, ``backend:slurm``,
    ``performance:q1:t1:value``) so a pass updates the open one rather than
    opening a second.
    """

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_key_closed", "key", "closed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    queue: Mapped[str | None] = mapped_column(String(128))
    backend: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    #: [{"time": iso, "text": ...}], oldest first
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def note(self, text: str, when: datetime | None = None) -> None:
        self.timeline = [*(self.timeline or []), {"time": iso(when or utcnow()), "text": text}]
        self.updated_at = when or utcnow()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "key": self.key, "queue": self.queue, "backend": self.backend,
            "title": self.title, "message": self.message, "opened_at": iso(self.opened_at),
            "updated_at": iso(self.updated_at), "closed_at": iso(self.closed_at), "open": self.is_open,
            "timeline": self.timeline,
        }

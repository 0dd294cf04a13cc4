"""Queues (places jobs run) and their status history."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hcflask.extensions import Model, db
from hcflask.models.common import iso, utcnow
from hcflask.states import QueueStatus


class Queue(Model):
    __tablename__ = "queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    backend: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=QueueStatus.ONLINE.value)
    autoexclusion: Mapped[bool] = mapped_column(default=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_changed_at: Mapped[datetime | None]
    #: set when an admin deletes a queue that has job history: the row stays
    #: (renamed, offline) so its jobs keep their queue; nothing lists it any more
    deleted_at: Mapped[datetime | None]

    events: Mapped[list[QueueEvent]] = relationship(
        back_populates="queue", order_by="QueueEvent.id.desc()", cascade="all, delete-orphan"
    )

    @classmethod
    def live(cls) -> Select[Queue]:
        """Queues that were not deleted: the catalogue tests, lists and the robot see."""
        return select(cls).where(cls.deleted_at.is_(None))

    def set_status(
        self,
        new: QueueStatus | str,
        actor: str,
        reason: str = "",
        rule: str | None = None,
        job_ids: Iterable[int] = (),
    ) -> QueueEvent | None:
        """Change the status and record who/what did it and why (None if unchanged)."""
        new = QueueStatus(new)
        if new.value == self.status:
            return None
        event = QueueEvent(
            queue=self, old_status=self.status, new_status=new.value, actor=actor,
            reason=reason, rule=rule, job_ids=list(job_ids),
        )
        self.status = new.value
        self.status_changed_at = event.time = utcnow()
        db.session.add(event)
        return event

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "backend": self.backend, "status": self.status,
            "autoexclusion": self.autoexclusion, "options": self.options,
            "description": self.description, "created_at": iso(self.created_at),
            "status_changed_at": iso(self.status_changed_at),
        }


class QueueEvent(Model):
    """One status change: old → new, by whom (``robot``, ``admin:<user>``), why."""

    __tablename__ = "queue_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), index=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    old_status: Mapped[str] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    job_ids: Mapped[list[int]] = mapped_column(JSON, default=list)

    queue: Mapped[Queue] = relationship(back_populates="events")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "queue": self.queue.name, "time": iso(self.time),
            "old_status": self.old_status, "new_status": self.new_status, "actor": self.actor,
            "rule": self.rule, "reason": self.reason, "job_ids": self.job_ids,
        }

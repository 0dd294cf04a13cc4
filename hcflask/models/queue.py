"""Queues (places jobs run), the claims their status is derived from, and its history.

Only :mod:`hcflask.engine.status` writes ``Queue.status``, ``Queue.version``
and the claims."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from hcflask.extensions import Model
from hcflask.models.common import iso, utcnow
from hcflask.models.names import name_key as fold_name
from hcflask.states import QueueStatus


class Queue(Model):
    __tablename__ = "queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: the name without regard to case, unique: ``SITE-A`` and ``site-a`` are one name (models/names.py)
    name_key: Mapped[str] = mapped_column(String(128), unique=True, index=True, server_default="")
    backend: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=QueueStatus.ONLINE.value)
    autoexclusion: Mapped[bool] = mapped_column(default=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_changed_at: Mapped[datetime | None]
    #: CPUs of the partition behind the queue (``hc queue discover``), for the cost of testing
    cpus: Mapped[int | None]
    #: bumped by every status write; writes are compare-and-set on it (engine/status.py)
    version: Mapped[int] = mapped_column(default=0)
    #: set when an admin deletes a queue that has job history: the row stays
    #: (renamed, offline) so its jobs keep their queue; nothing lists it any more
    deleted_at: Mapped[datetime | None]

    @validates("name")
    def _keep_key(self, _key: str, name: str) -> str:
        """Every write of the name writes its case-free key too (the unique index keeps it one)."""
        self.name_key = fold_name(name)
        return name

    events: Mapped[list[QueueEvent]] = relationship(
        back_populates="queue", order_by="QueueEvent.id.desc()", cascade="all, delete-orphan"
    )

    @classmethod
    def live(cls) -> Select[Queue]:
        """Queues that were not deleted: the catalogue tests, lists and the robot see."""
        return select(cls).where(cls.deleted_at.is_(None))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "backend": self.backend, "status": self.status,
            "autoexclusion": self.autoexclusion, "options": self.options,
            "description": self.description, "created_at": iso(self.created_at),
            "status_changed_at": iso(self.status_changed_at), "cpus": self.cpus,
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


class QueueClaim(Model):
    """One source's say on a queue's status: who, when, why, the evidence.

    Active while ``released_at`` is empty; released claims stay as history
    (the replay reads them).  ``source`` is ``admin``, ``robot`` or
    ``performance``; the highest active one decides the status.
    """

    __tablename__ = "queue_claim"
    __table_args__ = (Index("ix_queue_claim_queue_released", "queue_id", "released_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str | None] = mapped_column(String(64))
    job_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    #: the common failure of the deciding jobs (the outage guard rolls back by it)
    failure: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(index=True)
    released_by: Mapped[str | None] = mapped_column(String(128))
    #: ``admin`` (manual release), ``recover``, ``rollback``, ``band`` (alert closed)
    release_rule: Mapped[str | None] = mapped_column(String(32))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "status": self.status, "actor": self.actor, "reason": self.reason,
            "rule": self.rule, "job_ids": self.job_ids, "failure": self.failure, "since": iso(self.created_at),
            "released_at": iso(self.released_at), "released_by": self.released_by,
        }

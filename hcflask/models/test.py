"""Tests: one run of a template, with the template snapshotted at creation."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hcflask.extensions import Model
from hcflask.models.common import iso, utcnow
from hcflask.states import TestState


class Test(Model):
    __tablename__ = "test"
    __test__ = False  # not a pytest test class

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("template.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=TestState.SCHEDULED.value, index=True)
    #: the template document as it was when the test was created
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: queue names resolved from the template's patterns when the test started: the names *then*,
    #: which its pages keep showing after a queue is renamed or deleted
    queue_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the ids of those queues, in the same order: the test's history is attached to them, never to a
    #: name (a new queue given a deleted one's name starts empty); see engine/history.py
    queue_ids: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    host: Mapped[str | None] = mapped_column(String(255))
    #: the fencing token of ``host``'s hold on this test: grows on every adoption and move,
    #: and a host's tick writes only while the epoch it read is still the test's
    epoch: Mapped[int] = mapped_column(default=1, server_default="1")
    #: when (the database's clock) the current epoch began: the "adopted at" a fenced host logs
    epoch_at: Mapped[datetime | None]
    start_at: Mapped[datetime] = mapped_column(default=utcnow)
    end_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(128), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    #: stress tests: queue name → why submitting to it stopped (abort_fail_rate)
    #: a server default, so rows written by code that predates the column still insert
    aborted: Mapped[dict[str, str]] = mapped_column(JSON, server_default="{}")
    #: input data: queue name → why it gets no jobs ("no input replica at RSE X for queue Q"), a
    #: configuration problem shown on the test, never a queue failure (hcflask.data)
    input_notes: Mapped[dict[str, str]] = mapped_column(JSON, server_default="{}")

    template = relationship("Template", back_populates="tests")
    jobs = relationship("Job", back_populates="test", lazy="dynamic")

    @classmethod
    def from_template(cls, template: Any, start_at: datetime | None = None, created_by: str = "") -> Test:
        """A new scheduled test; editing the template later does not change it."""
        start = start_at or utcnow()
        doc = template.to_document()
        return cls(
            template=template, snapshot=doc, start_at=start,
            end_at=start + timedelta(seconds=doc["lifetime"]), created_by=created_by,
            state=TestState.SCHEDULED.value, queue_names=[], queue_ids=[],
        )

    def set_queues(self, queues: list[Any]) -> None:
        """The queues this test runs on, by id (its history) and by name (as they are called now)."""
        self.queue_ids = [q.id for q in queues]
        self.queue_names = [q.name for q in queues]

    def name_of(self, queue_id: int, fallback: str) -> str:
        """The name queue ``queue_id`` had when this test started (keys ``aborted``, ``input_notes``)."""
        for ident, name in zip(self.queue_ids or [], self.queue_names or [], strict=False):
            if ident == queue_id:
                return str(name)
        return fallback

    @property
    def template_name(self) -> str:
        return str(self.snapshot.get("name", "?"))

    @property
    def kind(self) -> str:
        return str(self.snapshot.get("kind") or "functional")

    @property
    def workload(self) -> dict[str, Any]:
        return dict(self.snapshot["workload"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "template_id": self.template_id, "template": self.template_name,
            "state": self.state, "host": self.host, "queues": self.queue_names,
            "queue_ids": self.queue_ids or [],
            "start_at": iso(self.start_at), "end_at": iso(self.end_at),
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "created_at": iso(self.created_at), "created_by": self.created_by, "note": self.note,
            "snapshot": self.snapshot, "kind": self.kind, "aborted": self.aborted or {},
            "input_notes": self.input_notes or {},
        }

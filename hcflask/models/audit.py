"""The audit log: every admin write, with who, what, when and from where."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model
from hcflask.models.common import iso, utcnow


class AuditEntry(Model):
    """One write: ``actor`` (``admin:<user>``, ``api:<user>``, ``cli``), the
    request (``POST /api/v1/queues``) or command, its answer, and the remote
    address.  Bodies are not stored: they may carry secrets."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int] = mapped_column(default=0)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": iso(self.time), "actor": self.actor, "action": self.action,
                "target": self.target, "status": self.status, "remote_addr": self.remote_addr}

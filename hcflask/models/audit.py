"""The audit log: every write attempt (refused ones too), with who, what, when, from where and why not."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model
from hcflask.models.common import iso, utcnow


class AuditEntry(Model):
    """One write attempt: ``actor`` (the person's one name: ``alice``, ``cli:root``,
    ``anonymous``), ``via`` (``ui``, ``api``, ``cli``), the request
    (``POST /api/v1/queues``) or command, its answer (HTTP status, or the CLI's
    exit status), why it was refused, and the remote address.  Bodies are not
    stored: they may carry secrets."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int] = mapped_column(default=0)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    via: Mapped[str] = mapped_column(String(8), default="")
    reason: Mapped[str] = mapped_column(Text, default="")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": iso(self.time), "actor": self.actor, "action": self.action,
                "target": self.target, "status": self.status, "remote_addr": self.remote_addr,
                "via": self.via, "reason": self.reason}

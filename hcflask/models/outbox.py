"""The outbox of robot actions: one row per configured action of an event.

Written in the same transaction as the decision (the :class:`RobotEvent`),
delivered later by the actions tick (:mod:`hcflask.engine.notify`), so a
slow webhook never holds a tick or a transaction, and a crash between the
decision and its action loses nothing.  The row names its action by where
it is configured (``config_key`` and a fingerprint), never by its URL or
headers: those stay in ``hc.toml``.

Two columns make delivery honest about order and duplicates:

* ``ordering_key`` -- the lane a delivery waits in: the event's backend and
  queue, and the channel (every command of that queue shares one lane, a
  webhook has one per receiver host).  A row is run only when no earlier row
  of its lane is still ``pending`` (:func:`hcflask.engine.notify.deliver`), so an
  exclude and its undo or recover reach the batch system in commit order;
* ``uid`` -- the delivery's stable id, the same on every attempt (the
  ``X-HC-Delivery`` header, the ``{delivery}`` field): delivery is at least
  once, and a receiver drops what it has seen.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hcflask.extensions import Model
from hcflask.models import robot as _robot  # noqa: F401 - declares RobotEvent, which a delivery points at
from hcflask.models.common import iso, utcnow

DELIVERY_STATES = ("pending", "delivered", "failed")


class Delivery(Model):
    __tablename__ = "robot_delivery"
    __table_args__ = (Index("ix_robot_delivery_state_next", "state", "next_attempt_at"),
                      Index("ix_robot_delivery_lane", "ordering_key", "state", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("robot_event.id"), index=True)
    #: the stable id receivers deduplicate on (at-least-once delivery)
    uid: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    #: the lane: deliveries with one key go out in commit (id) order, one at a time
    ordering_key: Mapped[str] = mapped_column(String(255), default="")
    #: ``record``, ``command`` or ``webhook``
    action: Mapped[str] = mapped_column(String(16))
    #: where the action is configured: ``<backend>.<event>.<index>`` under [robot.actions]
    config_key: Mapped[str] = mapped_column(String(128))
    #: hash of the configured entry, so an edited hc.toml never runs another action
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: what readers see of the target: the command's program, the webhook's host
    target: Mapped[str] = mapped_column(String(255), default="")
    #: the event's fields, filled into the action when it runs
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    event = relationship("RobotEvent")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "delivery": self.uid, "ordering_key": self.ordering_key, "event": self.event_id,
            "action": self.action, "config_key": self.config_key,
            "target": self.target, "state": self.state, "attempts": self.attempts, "last_error": self.last_error,
            "created_at": iso(self.created_at), "next_attempt_at": iso(self.next_attempt_at),
            "delivered_at": iso(self.delivered_at),
        }

"""Opening, updating and closing alerts, each step a line of the robot log.

An alert is found again by its ``key`` while it is open, so a pass that
sees the same trouble updates it (its timeline) instead of opening another.
The events returned are handed to
:func:`hcflask.engine.notify.enqueue` and committed with them by the caller.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import Alert, RobotEvent, utcnow


def open_alerts(kind: str | None = None) -> list[Alert]:
    query = select(Alert).where(Alert.closed_at.is_(None)).order_by(Alert.opened_at)
    if kind:
        query = query.where(Alert.kind == kind)
    return list(db.session.scalars(query))


def find_open(key: str) -> Alert | None:
    return db.session.scalar(select(Alert).where(Alert.key == key, Alert.closed_at.is_(None)))


def raise_alert(kind: str, key: str, title: str, message: str, queue: str | None = None,
                backend: str | None = None, now: datetime | None = None) -> tuple[Alert, RobotEvent | None]:
    """Open the alert ``key``, or update the open one; an event only when opened.

    ``now`` is the pass's time (the replay compares against it)."""
    now = now or utcnow()
    alert = find_open(key)
    if alert is not None:
        if alert.message != message:
            alert.message = message
            alert.note(message, now)
        return alert, None
    alert = Alert(kind=kind, key=key, title=title, message=message, queue=queue, backend=backend,
                  opened_at=now, timeline=[])
    alert.note(f"opened: {message}", now)
    db.session.add(alert)
    db.session.flush()
    event = RobotEvent(kind="alert_open", queue=queue, backend=backend, rule=kind, alert_id=alert.id,
                       message=f"{title}: {message}", time=now)
    db.session.add(event)
    return alert, event


def close_alert(alert: Alert, text: str, now: datetime | None = None) -> RobotEvent:
    alert.closed_at = now or utcnow()
    alert.note(f"closed: {text}", alert.closed_at)
    event = RobotEvent(kind="alert_close", queue=alert.queue, backend=alert.backend, rule=alert.kind,
                       alert_id=alert.id, message=f"{alert.title}: {text}", time=alert.closed_at)
    db.session.add(event)
    return event

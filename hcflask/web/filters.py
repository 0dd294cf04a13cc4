"""Jinja filters for times, durations and states."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, g, has_request_context

from hcflask.models import utcnow
from hcflask.times import shown


def display_zone() -> str:
    """The signed-in user's display time zone ('' = UTC, also outside a request: reports, the CLI)."""
    if not has_request_context():
        return ""
    from flask_login import current_user

    return str(getattr(current_user, "timezone", "") or "") if current_user.is_authenticated else ""


def when(value: datetime | str | None) -> str:
    """A time on a page, in the display zone and naming it: ``2026-12-03 09:25:02 CET``
    (:func:`hcflask.times.shown`)."""
    return shown(value, display_zone())


def utc(value: datetime | str | None) -> str:
    """A time in a report, which stays UTC whoever reads it: ``2026-12-03 08:25:02 UTC``."""
    return shown(value)


def duration(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return "–"
    seconds = int(((end or utcnow()) - start).total_seconds())
    if seconds < 0:
        return "–"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def queue_status(name: str) -> str | None:
    """The status of the queue called ``name``, or None when no queue has that name
    (a template's pattern, or a deleted queue): read once per request."""
    if "hc_queue_status" not in g:
        from hcflask.extensions import db
        from hcflask.models import Queue

        g.hc_queue_status = {q.name: q.status for q in db.session.scalars(Queue.live())}
    status: str | None = g.hc_queue_status.get(name)
    return status


def may(action: str) -> bool:
    """Show a write's button?  To a user whose role allows it; to anonymous visitors too
    (the button leads to the login page, as it always has)."""
    from flask_login import current_user

    return not current_user.is_authenticated or bool(current_user.may(action))


def register(app: Flask) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.globals["now"] = utcnow
    app.jinja_env.globals["queue_status"] = queue_status
    app.jinja_env.globals["may"] = may

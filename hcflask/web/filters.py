"""Jinja filters for times, durations and states."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, has_request_context

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


def may(action: str) -> bool:
    """Show a write's button?  To a user whose role allows it; to anonymous visitors too
    (the button leads to the login page, as it always has)."""
    from flask_login import current_user

    return not current_user.is_authenticated or bool(current_user.may(action))


def register(app: Flask) -> None:
    from hcflask.web.history import queue_refs

    app.jinja_env.globals["queue_refs"] = queue_refs
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.globals["now"] = utcnow
    app.jinja_env.globals["may"] = may

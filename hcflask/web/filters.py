"""Jinja filters for times, durations and states."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, has_request_context

from hcflask.models import utcnow


def display_zone() -> str:
    """The signed-in user's display time zone ('' = UTC, also outside a request: reports, the CLI)."""
    if not has_request_context():
        return ""
    from flask_login import current_user

    return str(getattr(current_user, "timezone", "") or "") if current_user.is_authenticated else ""


def tz_label() -> str:
    return display_zone() or "UTC"


def when(value: datetime | None) -> str:
    """A stored (naive UTC) time in the display zone, to the second."""
    if not value:
        return "–"
    zone = display_zone()
    if zone:
        try:
            value = value.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return value.strftime("%Y-%m-%d %H:%M:%S")


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
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.globals["now"] = utcnow
    app.jinja_env.globals["may"] = may
    app.jinja_env.globals["tz_label"] = tz_label

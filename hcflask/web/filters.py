"""Jinja filters for times, durations and states."""
from __future__ import annotations

from datetime import datetime

from flask import Flask

from hcflask.models import utcnow


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "–"


def duration(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return "–"
    seconds = int(((end or utcnow()) - start).total_seconds())
    if seconds < 0:
        return "–"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def register(app: Flask) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.globals["now"] = utcnow

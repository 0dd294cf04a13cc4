"""Helpers shared by the models."""
from __future__ import annotations

from datetime import UTC, datetime

from hcflask.times import UTCDateTime, naive_utc

__all__ = ["UTCDateTime", "iso", "naive_utc", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC, as stored in every timestamp column (SQLite has no zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


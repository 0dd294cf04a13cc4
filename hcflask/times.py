"""The one time boundary of the database: naive UTC in every column."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def naive_utc(value: datetime | None) -> datetime | None:
    """The one time boundary: an aware datetime becomes naive UTC, a naive one is UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


class UTCDateTime(TypeDecorator[datetime]):
    """Every timestamp column: naive UTC in, naive UTC out, whatever the database's time zone.

    Slurm, PanDA and result files give aware times; written as they are into a
    ``timestamp without time zone`` column, PostgreSQL would first convert them
    to the server's zone (12:00Z stored as 07:00 in America/New_York).
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return naive_utc(value)

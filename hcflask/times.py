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


#: the years a person may type: the pages' day pickers and the API's patterns accept the same
YEARS = (1970, 2999)


def parse_time(value: Any, field: str) -> datetime:
    """An ISO time a person typed, as naive UTC (an offset or ``Z`` is converted; none
    means UTC), in the years :data:`YEARS` (as the pages); else a :class:`ValidationError` naming ``field``."""
    from hcflask.models.spec import ValidationError

    text = str(value).strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
    except ValueError:
        raise ValidationError(field, f"expected an ISO date/time (2026-11-24T14:00), got {value!r}") from None
    if not YEARS[0] <= when.year <= YEARS[1]:
        raise ValidationError(field, f"must be in the years {YEARS[0]}-{YEARS[1]}, got {value!r}")
    return naive_utc(when) or when


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


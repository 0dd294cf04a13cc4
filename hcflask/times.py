"""Times: naive UTC in every column, one way to read a time a person typed, one way to show one.

Pages, reports and CLI output show every time in one shape, :data:`SHOWN`:
``2026-12-03 08:25:02 UTC``, or in a signed-in user's display zone the same
with that zone's abbreviation (``2026-12-03 09:25:02 CET``), so a time never
stands without its zone.  The API and JSON outputs keep ISO 8601 with ``Z``
(:func:`hcflask.models.common.iso`).
"""
from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def naive_utc(value: datetime | None) -> datetime | None:
    """The one time boundary: an aware datetime becomes naive UTC, a naive one is UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


#: how pages, reports and the CLI show a time (``%Z``: ``UTC``, ``CET``, ``CEST``, ...)
SHOWN = "%Y-%m-%d %H:%M:%S %Z"


def shown(value: datetime | str | None, zone: str = "", missing: str = "–") -> str:
    """A time as every page, report and CLI line shows it: ``2026-12-03 08:25:02 UTC``.

    ``value`` is a stored time (naive UTC, or aware) or an ISO string from a report's data
    (``2026-12-03T08:25:02Z``); ``zone`` an IANA name to show it in (``''``, or a name this
    machine does not know: UTC); ``missing`` stands for None or ''."""
    if value is None or value == "":
        return missing
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(_zone(zone)).strftime(SHOWN)


def _zone(name: str) -> tzinfo:
    if not name or name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


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


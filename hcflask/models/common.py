"""Helpers shared by the models."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Index, MetaData, text

from hcflask.times import UTCDateTime, naive_utc

__all__ = ["UTCDateTime", "iso", "naive_utc", "partial_index", "use_dialect", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC, as stored in every timestamp column (SQLite has no zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def partial_index(name: str, *columns: str, where: str) -> Index:
    """An index of the rows where ``where`` holds (SQL that SQLite and PostgreSQL read alike).

    SQLAlchemy takes that clause as a dialect's keyword (``sqlite_where``, ``postgresql_where``)
    and imports the dialect to check the keyword where the index is made, at the model's import:
    PostgreSQL's package (the modules of all its drivers) was 20 ms or more of every ``hc`` command
    on SQLite.  So the clause waits in the index's ``info`` until :func:`use_dialect` gives it to
    the database an app uses."""
    return Index(name, *columns, info={"where": where})


def use_dialect(metadata: MetaData, dialect: str) -> None:
    """Give every :func:`partial_index` of ``metadata`` its WHERE clause for ``dialect`` (``sqlite``
    or ``postgresql``); ``create_app`` calls it once it knows the database.  An index keeps the
    clause of every dialect it was given, as one made with both keywords did."""
    for table in metadata.tables.values():
        for index in table.indexes:
            if "where" in index.info:
                index.dialect_kwargs[f"{dialect}_where"] = text(index.info["where"])

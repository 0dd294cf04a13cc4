"""Helpers shared by the models."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Index, text

from hcflask.times import UTCDateTime, naive_utc

__all__ = ["UTCDateTime", "iso", "naive_utc", "partial_index", "use_dialect", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC, as stored in every timestamp column (SQLite has no zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


#: every :func:`partial_index` made so far, and the databases :func:`use_dialect` was told of
_PARTIAL: list[Index] = []
_DIALECTS: set[str] = set()


def partial_index(name: str, *columns: str, where: str) -> Index:
    """An index of the rows where ``where`` holds (SQL that SQLite and PostgreSQL read alike).

    SQLAlchemy takes that clause as a dialect's keyword (``sqlite_where``, ``postgresql_where``)
    and imports the dialect to check the keyword where the index is made, at the model's import:
    PostgreSQL's package (the modules of all its drivers) was 20 ms or more of every ``hc`` command
    on SQLite.  So the clause waits in the index's ``info`` until :func:`use_dialect` gives it to
    the database an app uses; a model declared after that (on first use: :mod:`hcflask.models`)
    gets it at once."""
    index = Index(name, *columns, info={"where": where})
    _PARTIAL.append(index)
    for dialect in _DIALECTS:
        _give(index, dialect)
    return index


def use_dialect(dialect: str) -> None:
    """Give every :func:`partial_index`, made or still to be made, its WHERE clause for ``dialect``
    (``sqlite`` or ``postgresql``); ``create_app`` calls it once it knows the database.  An index
    keeps the clause of every dialect it was given, as one made with both keywords did."""
    _DIALECTS.add(dialect)
    for index in _PARTIAL:
        _give(index, dialect)


def _give(index: Index, dialect: str) -> None:
    index.dialect_kwargs[f"{dialect}_where"] = text(index.info["where"])

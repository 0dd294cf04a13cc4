"""The rules of queue and template names, in one place for the CLI, the API and the forms.

A name is ASCII only: it goes into batch job names, environment variables,
file names and URLs, and case folding beyond ASCII differs between Python,
SQLite and PostgreSQL, so a non-ASCII name could not be kept unique without
regard to case everywhere.  Two names that differ only in case are one name,
as an admin reads them: the ``name_key`` column (the lower-case name) of
queues and templates is unique in the database, whatever path writes the row.
``<name>.deleted-<id>`` is reserved: deleting a queue with history renames its
row so (engine/queue_names.py), and a queue already holding that name would
make the deletion fail.  Errors echo at
most :data:`SHOWN` characters of what was given, so a 5,000-character name
does not flood a page or a terminal.
"""
from __future__ import annotations

import re
from typing import Any

#: patterns are used with ``fullmatch`` here and as ``^...$`` in the OpenAPI schemas
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
NAME_RULE = ("ASCII letters (A-Z, a-z), digits, '_', '.', '-', starting with a letter or digit, "
             "at most 128 characters")
#: the suffix a deleted queue's row takes; no name may end so
RESERVED_RE = re.compile(r"\.deleted-[0-9]+\Z", re.IGNORECASE)
RESERVED_RULE = "'.deleted-<number>' is reserved for deleted queues"
#: characters of a bad name an error repeats
SHOWN = 64


def shown(value: Any) -> str:
    """``value`` quoted for an error message, cut to :data:`SHOWN` characters."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= SHOWN:
        return repr(text)
    return f"{text[:SHOWN]!r}... ({len(text)} characters)"


def name_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid queue or template name, in words; None if it is."""
    if value in (None, ""):
        return f"required; {NAME_RULE}"
    if not isinstance(value, str):
        return f"must be text, got {shown(value)}"
    odd = next((c for c in value if not c.isascii()), None)
    if odd is not None:
        return (f"{shown(value)} contains {odd!r}, which is not ASCII: names are {NAME_RULE} "
                "(they go into batch job names, paths and URLs)")
    if len(value) > 128:
        return f"{shown(value)} is too long: {NAME_RULE}"
    if not NAME_RE.fullmatch(value):
        return f"{shown(value)} is not a valid name: {NAME_RULE}"
    if RESERVED_RE.search(value):
        return f"{shown(value)} is not a valid name: {RESERVED_RULE}"
    return None


def name_key(name: str) -> str:
    """A name without regard to case: what ``name_key`` columns hold, unique (names are ASCII)."""
    return name.lower()


def deleted_name(name: str, ident: int) -> str:
    """The name a deleted queue's row keeps: unique, as it carries the row's id, and within the
    column's 128 characters (a long name is cut before the suffix)."""
    suffix = f".deleted-{ident}"
    return name[:128 - len(suffix)] + suffix


def original_name(stored: str) -> str:
    """The name a deleted queue had (its stored name without the reserved suffix)."""
    return RESERVED_RE.sub("", stored)

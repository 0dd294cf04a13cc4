"""The words of every input error, in one place (issue 25).

The CLI, the API and the web forms reach the same validator, but a message
written out in two places drifts into two wordings ("must be a whole number,
got '-1'" on the command line, "must be at least 1" in the API).  Every
check of a user's value builds its reason here, so one mistake reads the
same wherever it is made; tests/models/test_messages.py holds them to it.
"""
from __future__ import annotations

import reprlib
from typing import Any

#: how backend options look, shown with every error about their shape
OPTIONS_EXAMPLE = "'slots: 4' in YAML or JSON, -o slots=4 on the command line"


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 64
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict = 2, 4, 4


def shown(value: Any) -> str:
    """What was given, as Python writes it, cut short: a 5,000-character text or a YAML document
    of nested aliases is echoed in a few dozen characters, not whole."""
    return _SHOWN.repr(value)


def whole_number(raw: Any) -> str:
    return f"must be a whole number, got {shown(raw)}"


def at_least(low: int, value: int) -> str:
    return f"must be at least {low}, got {value}"


def at_most(high: int, limit: str, value: int) -> str:
    """``limit``: the ``[limits]`` key of hc.toml that sets ``high``."""
    return f"must be at most {high} (limits.{limit}), got {value}"


def not_mapping() -> str:
    return "must be a table/mapping"


def options_shape(raw: Any) -> str:
    """Backend options that are not ``option: value`` pairs (a list, text, ``slots=1`` in YAML)."""
    return f"must be option: value pairs, e.g. {OPTIONS_EXAMPLE}; got {shown(raw)}"


def not_text() -> str:
    return "must be text"


def not_flag(raw: Any) -> str:
    return f"must be true or false, got {shown(raw)}"


def required(what: str = "") -> str:
    return f"required; {what}" if what else "required"


def no_queue_matches(patterns: list[str]) -> str:
    """A template's queue names/patterns that match no queue: a test of it would end in error."""
    return f"no queue matches {', '.join(patterns)}"


def pattern_matches_nothing(pattern: str) -> str:
    return f"{pattern!r} matches no queue (a test runs only on the queues that exist when it starts)"

"""Defaults are written once, in :mod:`hcflask.config`: the generated hc.toml and every default the
docs quote must say the same, so an admin never reads one number in the docs and gets another.

What is checked: every ``key = value`` line (also commented out, ``# key = value``) of the generated
hc.toml and of every ```` ```toml ```` block in docs/*.md whose section has defaults in the code
(``config.DEFAULTS``, ``[robot]``, ``[limits]``), the "| key | default |" rows of the docs'
tables, and the "`key` (default)" of their prose.  A line whose comment says "e.g." is an
example, not a default; the per-template, per-queue and per-backend robot sections are
overrides, never defaults.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hcflask import config
from hcflask.models.spec import DEFAULT_LIMITS

DOCS = Path(__file__).resolve().parent.parent / "docs"
LINE = re.compile(r"^#?\s*([a-z_]+)\s*=\s*(.+?)\s*(?:#\s*(.*))?$")
SECTION = re.compile(r"^#?\s*\[([a-z_.\-]+)\]")
#: values made up per instance or per machine (the generated file's secret, the node's name), not defaults
GENERATED = {"SECRET_KEY", "INSTANCE_NAME", "DATABASE_URL", "HOST_NAME"}


def default_of(section: str, key: str) -> tuple[bool, Any]:
    """(known, default) of ``[section] key``; unknown keys and override sections are not defaults."""
    if section == "robot":
        robot = config.DICT_SECTIONS["ROBOT"]
        return (key in robot and not isinstance(robot[key], dict)), robot.get(key)
    if section == "limits":
        return key in DEFAULT_LIMITS, DEFAULT_LIMITS.get(key)
    if section.startswith(("robot.", "backends")):
        return False, None
    flat = f"{section}_{key}".upper() if section else key.upper()
    return flat in config.DEFAULTS, config.DEFAULTS.get(flat)


def quoted_defaults(text: str, where: str, first_line: int = 1) -> list[tuple[str, str, Any, Any]]:
    """(place, key, quoted, default) of every default ``text`` (TOML, maybe commented out) quotes."""
    found, section = [], ""
    for number, line in enumerate(text.splitlines(), first_line):
        if match := SECTION.match(line):
            section = match.group(1)
            continue
        match = LINE.match(line.strip())
        if not match or "e.g." in (match.group(3) or ""):
            continue
        key, raw = match.group(1), match.group(2)
        known, default = default_of(section, key)
        if not known or (not section and key.upper() in GENERATED):
            continue
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            continue  # an inline table or array spread over lines: not a default anyone quotes
        found.append((f"{where}:{number} [{section}]", key, value, default))
    return found


def toml_blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in re.finditer(r"```toml\n(.*?)```", text, re.S)]


def table_defaults(path: Path) -> list[tuple[str, str, Any, Any]]:
    """``| `[server] bind`, `port` | `127.0.0.1`, `8080` | ...`` rows of the docs' tables."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        section = m.group(1) if (m := re.match(r"`\[([a-z_.]+)\]", cells[0])) else ""
        keys = re.findall(r"`(?:\[[a-z_.]+\] )?([a-z_]+)`", cells[0])
        values = re.findall(r"`([^`]*)`", cells[1])
        if not keys or len(keys) != len(values):
            continue
        for key, raw in zip(keys, values, strict=True):
            known, default = default_of(section, key)
            if not known or key.upper() in GENERATED:
                continue
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw  # a bare word in a table cell (127.0.0.1) is the string itself
            found.append((f"{path.name}:{number} [{section}]", key, value, default))
    return found


PROSE = re.compile(r"`(?:\[([a-z_.]+)\] )?([a-z_]+)` \((\d[\d.,]*)( %)?\)")


def section_of(key: str) -> str | None:
    """The one section whose default ``key`` names (prose often leaves the section out)."""
    robot = config.DICT_SECTIONS["ROBOT"]
    if key in robot and not isinstance(robot[key], dict):
        return "robot"
    owners = [flat.lower()[: -len(key) - 1] for flat in config.DEFAULTS if flat.lower().endswith(f"_{key}")]
    return owners[0] if len(owners) == 1 else None


def prose_defaults(path: Path) -> list[tuple[str, str, Any, Any]]:
    """A default in the text: a key in backticks, then its value in parentheses ("30 %" too)."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in PROSE.finditer(line):
            section, key, raw, percent = match.groups()
            section = section or section_of(key)
            known, default = default_of(section, key) if section else (False, None)
            if known:
                value = float(raw.replace(",", "")) / (100 if percent else 1)
                found.append((f"{path.name}:{number} [{section}]", key, value, default))
    return found


def every_doc_default() -> list[tuple[str, str, Any, Any]]:
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for start, block in toml_blocks(path):
            found += quoted_defaults(block, path.name, start + 1)
        found += table_defaults(path) + prose_defaults(path)
    return found


def test_the_generated_config_quotes_the_code_defaults(tmp_path: Path) -> None:
    text = config.write_initial(tmp_path, environ={}).read_text()
    quoted = quoted_defaults(text, "hc.toml")
    wrong = [q for q in quoted if q[2] != q[3]]
    assert not wrong, wrong
    # every robot number an admin tunes first is there, and the file is valid TOML that loads
    keys = {key for _, key, _, _ in quoted}
    assert {"exclude_last", "recover_last", "window_hours", "action_retries", "port", "output_limit"} <= keys
    loaded = config.load(tmp_path, environ={})["ROBOT"]["action_retries"]
    assert loaded == config.DICT_SECTIONS["ROBOT"]["action_retries"]


def test_the_generated_config_does_not_call_the_robot_setting_the_switch(tmp_path: Path) -> None:
    """docs/robot.md: ``[robot] enabled = false`` is a hard off under the switch, not the switch."""
    line = next(x for x in config.write_initial(tmp_path, environ={}).read_text().splitlines()
                if x.startswith("# enabled ="))
    assert "global switch" not in line and "hard off" in line


@pytest.mark.parametrize("place, key, quoted, default", every_doc_default(), ids=lambda v: str(v))
def test_every_default_the_docs_quote_is_the_code_default(place: str, key: str, quoted: Any, default: Any) -> None:
    assert quoted == default, f"{place} says {key} = {quoted!r}; the code's default is {default!r}"


def test_the_docs_quote_the_defaults_an_admin_looks_for() -> None:
    """The check above found what it is meant to check (a parser that finds nothing passes nothing)."""
    keys = {(place.split(":")[0], key) for place, key, _, _ in every_doc_default()}
    assert {("admin.md", "action_retries"), ("admin.md", "exclude_last"), ("admin.md", "port"),
            ("operations.md", "action_retries"), ("scale.md", "jobs_days"), ("api.md", "walltime"),
            ("robot.md", "outage_share"), ("operations.md", "core_seconds"), ("scale.md", "max_days")} <= keys


def test_a_wrong_default_in_a_doc_is_found() -> None:
    """The checker itself: admin.md's old ``action_retries = 2`` is reported."""
    quoted = quoted_defaults("[robot]\naction_retries = 2\n[robot.queues.q]\nexclude_last = 9\n", "x")
    assert quoted == [("x:2 [robot]", "action_retries", 2, config.DICT_SECTIONS["ROBOT"]["action_retries"])]

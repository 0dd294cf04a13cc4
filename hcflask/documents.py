"""Reading and writing template files (YAML, TOML or JSON), so sites keep
their templates in git and load them with ``hc template import``.

PyYAML and tomli-w are imported when a document of theirs is read or written:
every ``hc template`` and ``hc test`` command imports this module, and
``hc test list`` or ``hc test report`` reads no file (PyYAML alone is a tenth
of such a command's start-up; docs/operations.md, "How fast the hc command is").
"""
from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hcflask.models import ValidationError

if TYPE_CHECKING:
    import yaml

FORMATS = ("yaml", "toml", "json")


def format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("yaml", "yml"):
        return "yaml"
    if suffix in ("toml", "json"):
        return suffix
    raise ValidationError("file", f"{path.name}: unknown format (use .yaml, .yml, .toml or .json)")


def parse(text: str, fmt: str, source: str = "input") -> Any:
    """Parse a document; syntax errors become ValidationError('file', ...)."""
    import yaml

    try:
        if fmt == "yaml":
            return yaml.safe_load(text)
        if fmt == "toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ValidationError("file", f"{source}: not valid {fmt.upper()}: {detail}") from None


def load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError("file", f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ValidationError("file", f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse(text, format_of(path), str(path))


@functools.cache
def _block_dumper() -> type[yaml.SafeDumper]:
    """PyYAML's safe dumper writing multi-line strings (scripts) as ``|`` blocks, readable in a diff."""
    import yaml

    class BlockDumper(yaml.SafeDumper):
        pass

    BlockDumper.add_representer(str, _str)
    return BlockDumper


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def write(path: Path, text: str) -> None:
    """Write a document; a missing folder or a read-only file is a ValidationError naming ``output``."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ValidationError("output", f"{path}: {exc.strerror}") from None


def dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return yaml.dump(document, Dumper=_block_dumper(), sort_keys=False, allow_unicode=True)
    if fmt == "toml":
        import tomli_w

        return tomli_w.dumps(_drop_none(document))
    return json.dumps(document, indent=2) + "\n"


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave such keys out."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value

"""The template document: one format for files, the API and the UI form.

``validate_template`` turns whatever a user gave (parsed YAML/TOML/JSON or a
form) into a complete, normalised document, or raises
:class:`ValidationError` naming the field (dotted path) and the reason.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
TOP_KEYS = {
    "name", "description", "queues", "lifetime", "jobs_in_flight", "max_jobs",
    "max_running", "autoexclusion", "renew", "workload",
}
WORKLOAD_KEYS = {"script", "image", "command", "resources", "success", "metrics"}
RESOURCE_DEFAULTS = {"cores": 1, "memory_mb": 0, "walltime": 600, "gpus": 0}
SUCCESS_DEFAULTS: dict[str, Any] = {"exit_code": 0, "must_match": [], "must_not_match": []}
REFERENCE_KEYS = {"value", "lower", "upper"}


class ValidationError(ValueError):
    """Bad input; ``field`` is a dotted path such as ``workload.resources.cores``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _int(doc: Mapping[str, Any], key: str, field: str, default: int, low: int = 0) -> int:
    value = doc.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(field, f"must be a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(field, f"must be a whole number, got {value!r}") from None
    if number < low:
        raise ValidationError(field, f"must be at least {low}, got {number}")
    return number


def _bool(doc: Mapping[str, Any], key: str, field: str, default: bool) -> bool:
    value = doc.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise ValidationError(field, f"must be true or false, got {value!r}")


def _regex_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValidationError(field, "must be a list of regular expressions")
    for i, pattern in enumerate(value):
        _regex(pattern, f"{field}[{i}]")
    return [str(p) for p in value]


def _regex(pattern: Any, field: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ValidationError(field, "must be a non-empty regular expression")
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ValidationError(field, f"invalid regular expression: {exc}") from None


def _unknown(doc: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise ValidationError(f"{prefix}{extra[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, "must be a table/mapping")
    return value


def _metrics(value: Any) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    for name, raw in _mapping(value, "workload.metrics").items():
        field = f"workload.metrics.{name}"
        if not NAME_RE.match(str(name)):
            raise ValidationError(field, "metric names use letters, digits, '_', '.', '-'")
        if isinstance(raw, str):
            raw = {"pattern": raw}
        raw = _mapping(raw, field)
        _unknown(raw, {"pattern", "unit", "reference"}, f"{field}.")
        compiled = _regex(raw.get("pattern"), f"{field}.pattern")
        if not compiled.groupindex and compiled.groups != 1:
            raise ValidationError(f"{field}.pattern", "needs a named group (?P<name>...) or exactly one group")
        metrics[str(name)] = {
            "pattern": raw["pattern"],
            "unit": str(raw.get("unit") or ""),
            "reference": _reference(raw.get("reference"), f"{field}.reference"),
        }
    return metrics


def _reference(value: Any, field: str) -> dict[str, float] | None:
    if value in (None, {}):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"value": float(value)}
    ref = _mapping(value, field)
    _unknown(ref, REFERENCE_KEYS, f"{field}.")
    out: dict[str, float] = {}
    for key, number in ref.items():
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValidationError(f"{field}.{key}", f"must be a number, got {number!r}")
        out[key] = float(number)
    if "lower" in out and "upper" in out and out["lower"] > out["upper"]:
        raise ValidationError(f"{field}.lower", "is above upper")
    return out or None


def validate_workload(raw: Any) -> dict[str, Any]:
    doc = _mapping(raw, "workload")
    _unknown(doc, WORKLOAD_KEYS, "workload.")
    script = doc.get("script") or ""
    image = doc.get("image") or ""
    command = doc.get("command") or ""
    for key, value in (("script", script), ("image", image), ("command", command)):
        if not isinstance(value, str):
            raise ValidationError(f"workload.{key}", "must be text")
    if not script.strip() and not image.strip():
        raise ValidationError("workload.script", "a workload needs a script, or an image and a command")
    if image and not (command.strip() or script.strip()):
        raise ValidationError("workload.command", "a container workload needs a command")
    res_in = _mapping(doc.get("resources"), "workload.resources")
    _unknown(res_in, set(RESOURCE_DEFAULTS), "workload.resources.")
    resources = {
        key: _int(res_in, key, f"workload.resources.{key}", default, low=1 if key in ("cores", "walltime") else 0)
        for key, default in RESOURCE_DEFAULTS.items()
    }
    suc_in = _mapping(doc.get("success"), "workload.success")
    _unknown(suc_in, set(SUCCESS_DEFAULTS), "workload.success.")
    success = {
        "exit_code": _int(suc_in, "exit_code", "workload.success.exit_code", 0),
        "must_match": _regex_list(suc_in.get("must_match"), "workload.success.must_match"),
        "must_not_match": _regex_list(suc_in.get("must_not_match"), "workload.success.must_not_match"),
    }
    return {
        "script": script,
        "image": image,
        "command": command,
        "resources": resources,
        "success": success,
        "metrics": _metrics(doc.get("metrics")),
    }


def validate_queues(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.replace(",", " ").split()]
    if not isinstance(value, list) or not value:
        raise ValidationError("queues", "must be a non-empty list of queue names or glob patterns")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or not re.match(r"^[A-Za-z0-9_.\-*?\[\]!]+$", item):
            raise ValidationError(f"queues[{i}]", f"not a queue name or glob pattern: {item!r}")
        out.append(item.strip())
    return out


def validate_template(raw: Any) -> dict[str, Any]:
    """Check and normalise a template document (the format: docs/admin.md "Template files")."""
    doc = _mapping(raw, "template")
    _unknown(doc, TOP_KEYS, "")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError("name", "required; letters, digits, '_', '.', '-' (at most 128)")
    description = doc.get("description") or ""
    if not isinstance(description, str):
        raise ValidationError("description", "must be text")
    if "workload" not in doc:
        raise ValidationError("workload", "required")
    return {
        "name": name,
        "description": description,
        "queues": validate_queues(doc.get("queues")),
        "lifetime": _int(doc, "lifetime", "lifetime", 86400, low=1),
        "jobs_in_flight": _int(doc, "jobs_in_flight", "jobs_in_flight", 1, low=1),
        "max_jobs": _int(doc, "max_jobs", "max_jobs", 0),
        "max_running": _int(doc, "max_running", "max_running", 0),
        "autoexclusion": _bool(doc, "autoexclusion", "autoexclusion", False),
        "renew": _bool(doc, "renew", "renew", False),
        "workload": validate_workload(doc.get("workload")),
    }

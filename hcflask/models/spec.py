"""The one validator of what users give: template documents and queue bodies,
from files, the API, the UI forms and the CLI alike.

``validate_template`` turns parsed YAML/TOML/JSON (or a form's document)
into a complete, normalised document, or raises :class:`ValidationError`
listing *every* problem found (dotted field and reason), so a form shows all
of them after one submit.  Nothing is coerced: ``"maybe"`` is not a
boolean, ``2.5`` and ``true`` are not whole numbers.  Upper limits come from
``[limits]`` in hc.toml (:data:`DEFAULT_LIMITS`).  The OpenAPI schemas are
built from the same tables (:mod:`hcflask.models.spec_schema`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from hcflask.models import messages
from hcflask.models.names import NAME_RE, NAME_RULE, name_problem

QUEUE_PATTERN_RE = re.compile(r"[A-Za-z0-9_.\-*?\[\]!]{1,128}")
#: "blank" means only these (the same set in Python and in the schemas' ECMA regexes)
BLANK = " \t\r\n"
#: whole-number fields: (default, minimum); the maximum is the limit of the same name
TOP_INTS: dict[str, tuple[int, int]] = {
    "lifetime": (86400, 1), "jobs_in_flight": (1, 1), "max_jobs": (0, 0), "max_running": (0, 0),
}
TOP_BOOLS: dict[str, bool] = {"autoexclusion": False, "renew": False}
RESOURCE_INTS: dict[str, tuple[int, int]] = {"cores": (1, 1), "memory_mb": (0, 0), "walltime": (600, 1), "gpus": (0, 0)}
TOP_KEYS = {"name", "description", "queues", "workload", "kind", "stress", "inputs", "outputs", *TOP_INTS, *TOP_BOOLS}
WORKLOAD_KEYS = {"script", "image", "command", "resources", "success", "metrics"}
SUCCESS_KEYS = {"exit_code", "must_match", "must_not_match", "not_applicable_exit_code"}
METRIC_KEYS = {"pattern", "unit", "reference"}
REFERENCE_KEYS = {"value", "lower", "upper"}
QUEUE_KEYS = {"name", "backend", "options", "description", "autoexclusion"}
#: upper limits, overridden by ``[limits]`` in hc.toml
DEFAULT_LIMITS: dict[str, int] = {
    "lifetime": 366 * 86400, "jobs_in_flight": 1000, "max_jobs": 1_000_000, "max_running": 100_000,
    "cores": 4096, "memory_mb": 64 * 1024 * 1024, "walltime": 30 * 86400, "gpus": 64, "exit_code": 255,
    "slots": 1024, "queues": 1000, "patterns": 100, "metrics": 100,
    "text": 10_000, "script": 1_000_000,
}


def as_whole(value: Any) -> int | None:
    """A JSON whole number (``3`` or ``3.0``, as JSON Schema's ``integer``), else None: never a bool, 2.5 or "3"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


#: text that means a whole number where only text can be typed (a command line, a form field)
WHOLE_TEXT = re.compile(r"-?[0-9]{1,100}")


def from_text(text: str) -> int | str:
    """What was typed, as the validator should see it: ``4`` and ``-1`` as numbers, so they are
    checked as numbers (``must be at least 1, got -1``); anything else as the text it is."""
    return int(text) if WHOLE_TEXT.fullmatch(text) else text


class ValidationError(ValueError):
    """Bad input; ``field`` is a dotted path such as ``workload.resources.cores``.

    ``errors`` holds every (field, reason) found; ``field``/``reason`` are
    the first.  ``status`` is the HTTP answer: 400, or 409 when the input is
    well formed but clashes with what exists (a name taken, a partition the
    batch system does not know, a file missing on the service host).
    """

    status = 400

    def __init__(self, field: str, reason: str, more: list[tuple[str, str]] | None = None) -> None:
        self.errors = [(field, reason), *(more or [])]
        super().__init__("; ".join(f"{f}: {r}" for f, r in self.errors))
        self.field = field
        self.reason = reason


class Conflict(ValidationError):
    """Well-formed input that clashes with the service's state (HTTP 409)."""

    status = 409


def current_limits() -> dict[str, int]:
    """The limits of the running app (``[limits]``), or the defaults outside one."""
    from flask import current_app, has_app_context

    configured = current_app.config.get("LIMITS", {}) if has_app_context() else {}
    return {**DEFAULT_LIMITS, **configured}


def check_limits(limits: Mapping[str, Any]) -> None:
    """``[limits]`` in hc.toml: known keys, positive whole numbers (ConfigError otherwise)."""
    from hcflask.config import ConfigError

    for key, value in limits.items():
        if key not in DEFAULT_LIMITS:
            raise ConfigError(f"limits.{key}: unknown key (known: {', '.join(sorted(DEFAULT_LIMITS))})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"limits.{key}: must be a whole number of at least 1, got {value!r}")


class Checker:
    """Collects every problem of one document, then raises them together."""

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self.limits = dict(limits or current_limits())
        self.errors: list[tuple[str, str]] = []

    def add(self, field: str, reason: str) -> None:
        self.errors.append((field, reason))

    def done(self) -> None:
        if self.errors:
            (field, reason), *more = self.errors
            raise ValidationError(field, reason, more)

    def unknown(self, doc: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        for key in sorted(set(doc) - allowed, key=str):
            self.add(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        """A table; an absent key should be passed as ``{}`` (null is not a table)."""
        if not isinstance(value, Mapping):
            self.add(field, messages.not_mapping())
            return {}
        return value

    def whole(self, doc: Mapping[str, Any], key: str, field: str, default: int, low: int,
              limit: str | None = None) -> int:
        raw = doc.get(key, default)
        value = as_whole(raw)
        if value is None:
            self.add(field, messages.whole_number(raw))
            return default
        high = self.limits[limit or key]
        if value < low:
            self.add(field, messages.at_least(low, value))
            return default
        if value > high:
            self.add(field, messages.at_most(high, limit or key, value))
            return default
        return value

    def flag(self, doc: Mapping[str, Any], key: str, default: bool) -> bool:
        value = doc.get(key, default)
        if not isinstance(value, bool):
            self.add(key, messages.not_flag(value))
            return default
        return value

    def text(self, doc: Mapping[str, Any], key: str, field: str, limit: str = "text", nullable: bool = False) -> str:
        value = doc.get(key, "")
        if value is None and nullable:
            return ""
        if not isinstance(value, str):
            self.add(field, messages.not_text())
            return ""
        if len(value) > self.limits[limit]:
            self.add(field, f"at most {self.limits[limit]} characters, got {len(value)}")
        return value

    def name(self, value: Any, field: str = "name") -> str:
        """A queue's or template's name (the rules: models/names.py)."""
        problem = name_problem(value)
        if problem:
            self.add(field, problem)
        return value if isinstance(value, str) else ""

    def regex(self, pattern: Any, field: str) -> re.Pattern[str] | None:
        if not isinstance(pattern, str) or not pattern:
            self.add(field, "must be a non-empty regular expression")
            return None
        try:
            return re.compile(pattern, re.MULTILINE)
        except (re.error, RecursionError, OverflowError) as exc:
            self.add(field, f"invalid regular expression: {exc}")
            return None

    def regex_list(self, value: Any, field: str) -> list[str]:
        if not isinstance(value, list):
            self.add(field, "must be a list of regular expressions")
            return []
        if len(value) > self.limits["patterns"]:
            self.add(field, f"at most {self.limits['patterns']} patterns")
        good = [p for i, p in enumerate(value) if self.regex(p, f"{field}[{i}]") is not None]
        return [str(p) for p in good]


def _reference(check: Checker, value: Any, field: str) -> dict[str, float] | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"value": float(value)}
    ref = check.mapping(value, field)
    check.unknown(ref, REFERENCE_KEYS, f"{field}.")
    out: dict[str, float] = {}
    for key in sorted(REFERENCE_KEYS & set(ref)):
        number = ref[key]
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            check.add(f"{field}.{key}", f"must be a number, got {number!r}")
            continue
        out[key] = float(number)
    return out or None


def _metrics(check: Checker, value: Any) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    table = check.mapping(value, "workload.metrics")
    if len(table) > check.limits["metrics"]:
        check.add("workload.metrics", f"at most {check.limits['metrics']} metrics")
    for name, raw in table.items():
        field = f"workload.metrics.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            check.add(field, f"metric names: {NAME_RULE}")
            continue
        if isinstance(raw, str):
            raw = {"pattern": raw}
        raw = check.mapping(raw, field)
        check.unknown(raw, METRIC_KEYS, f"{field}.")
        check.regex(raw.get("pattern"), f"{field}.pattern")
        unit = raw.get("unit")
        unit = "" if unit is None else unit
        if not isinstance(unit, str):
            check.add(f"{field}.unit", "must be text")
        metrics[name] = {"pattern": raw.get("pattern"), "unit": str(unit),
                         "reference": _reference(check, raw.get("reference"), f"{field}.reference")}
    return metrics


def _code(check: Checker, doc: Mapping[str, Any]) -> dict[str, str]:
    """script, or image + command: one of the two, never both (the script would silently not run)."""
    code = {key: check.text(doc, key, f"workload.{key}", "script") for key in ("script", "image", "command")}
    script, image, command = (code[k].strip(BLANK) for k in ("script", "image", "command"))
    if script and image:
        check.add("workload.image", "give a script, or an image with a command, not both")
    elif not script and not image:
        check.add("workload.script", "a workload needs a script, or an image and a command")
    elif image and not command:
        check.add("workload.command", "a container workload needs a command")
    elif command and not image:
        check.add("workload.command", "a command runs in a container: give an image too, or use script")
    return code


def check_workload(check: Checker, raw: Any) -> dict[str, Any]:
    doc = check.mapping(raw, "workload")
    check.unknown(doc, WORKLOAD_KEYS, "workload.")
    code = _code(check, doc)
    res_in = check.mapping(doc.get("resources", {}), "workload.resources")
    check.unknown(res_in, set(RESOURCE_INTS), "workload.resources.")
    resources = {key: check.whole(res_in, key, f"workload.resources.{key}", default, low)
                 for key, (default, low) in RESOURCE_INTS.items()}
    suc_in = check.mapping(doc.get("success", {}), "workload.success")
    check.unknown(suc_in, SUCCESS_KEYS, "workload.success.")
    success = {
        "exit_code": check.whole(suc_in, "exit_code", "workload.success.exit_code", 0, 0),
        "must_match": check.regex_list(suc_in.get("must_match", []), "workload.success.must_match"),
        "must_not_match": check.regex_list(suc_in.get("must_not_match", []), "workload.success.must_not_match"),
    }
    if suc_in.get("not_applicable_exit_code") is not None:  # opt-in: only probes say "4 means n/a"
        code_na = check.whole(suc_in, "not_applicable_exit_code", "workload.success.not_applicable_exit_code",
                              0, 1, "exit_code")
        if code_na and code_na == success["exit_code"]:
            check.add("workload.success.not_applicable_exit_code", "must differ from workload.success.exit_code")
        success["not_applicable_exit_code"] = code_na
    return {**code, "resources": resources, "success": success, "metrics": _metrics(check, doc.get("metrics", {}))}


def validate_workload(raw: Any) -> dict[str, Any]:
    check = Checker()
    workload = check_workload(check, raw)
    check.done()
    return workload


def _queues(check: Checker, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        check.add("queues", "must be a non-empty list of queue names or glob patterns")
        return []
    if len(value) > check.limits["queues"]:
        check.add("queues", f"at most {check.limits['queues']} names or patterns")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not QUEUE_PATTERN_RE.fullmatch(item):
            check.add(f"queues[{i}]", f"not a queue name or glob pattern: {item!r}")
    return [str(item) for item in value]


def validate_template(raw: Any, limits: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Check and normalise a template document (docs/api.md has the fields and limits)."""
    check = Checker(limits)
    doc = check.mapping(raw, "template")
    check.done()
    check.unknown(doc, TOP_KEYS, "")
    out: dict[str, Any] = {
        "name": check.name(doc.get("name")),
        "description": check.text(doc, "description", "description", nullable=True),
        "queues": _queues(check, doc.get("queues")),
        **{key: check.whole(doc, key, key, default, low) for key, (default, low) in TOP_INTS.items()},
        **{key: check.flag(doc, key, default) for key, default in TOP_BOOLS.items()},
    }
    if "workload" not in doc:
        check.add("workload", "required")
    else:
        out["workload"] = check_workload(check, doc["workload"])
    out["kind"], out["stress"] = check_kind(check, doc, out)
    from hcflask.models.spec_inputs import check_inputs, check_outputs

    out["inputs"] = check_inputs(check, doc.get("inputs"))
    out["outputs"] = check_outputs(check, doc.get("outputs"))
    check.done()
    return out


def _options(check: Checker, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        check.add("options", messages.options_shape(value))
        return {}
    return dict(value)


def validate_queue(raw: Any) -> dict[str, Any]:
    """A queue body (API, form, CLI): known keys, exact types; backend options are checked by the backend."""
    check = Checker()
    doc = check.mapping(raw, "body")
    check.done()
    check.unknown(doc, QUEUE_KEYS, "")
    backend = doc.get("backend")
    if not isinstance(backend, str) or not backend:
        check.add("backend", "required: local, slurm or panda")
    out = {
        "name": check.name(doc.get("name")), "backend": backend if isinstance(backend, str) else "",
        "options": _options(check, doc.get("options", {})),
        "description": check.text(doc, "description", "description", nullable=True),
        "autoexclusion": check.flag(doc, "autoexclusion", True),
    }
    check.done()
    return out


# -- kind: functional or stress (issue 13; kept apart from the checks above) --

KINDS = ("functional", "stress")
STRESS_KEYS = {"ramp", "max_jobs", "abort_fail_rate"}
STEP_KEYS = {"at", "in_flight"}
#: steps of a ramp at most
RAMP_STEPS = 100


def check_kind(check: Checker, doc: Mapping[str, Any], out: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """``kind`` (absent: functional) and, for a stress test, its ``stress`` section.

    A stress test is started on demand and judged by its report, so it
    never drives auto-exclusion and never renews itself.
    """
    kind = doc.get("kind", "functional")
    if kind not in KINDS:
        check.add("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        return "functional", None
    if kind == "functional":
        if doc.get("stress") is not None:
            check.add("stress", "only a template of kind: stress has a stress section")
        return kind, None
    for key, what in (("autoexclusion", "drives auto-exclusion"), ("renew", "renews")):
        if out.get(key) is True:
            check.add(key, f"must be false: a stress test never {what}")
    for key, instead in (("jobs_in_flight", "stress.ramp"), ("max_jobs", "stress.max_jobs"),
                         ("max_running", "stress.ramp")):
        if key in doc and out.get(key) != TOP_INTS[key][0]:
            check.add(key, f"does not apply to kind: stress (use {instead})")
    if "stress" not in doc:
        check.add("stress", "required for kind: stress (ramp, max_jobs)")
        return kind, None
    raw = check.mapping(doc["stress"], "stress")
    check.unknown(raw, STRESS_KEYS, "stress.")
    if "max_jobs" not in raw:
        check.add("stress.max_jobs", "required: jobs per queue after which the test completes")
    return kind, {
        "ramp": _ramp(check, raw.get("ramp")),
        "max_jobs": check.whole(raw, "max_jobs", "stress.max_jobs", 1, 1),
        "abort_fail_rate": _rate(check, raw.get("abort_fail_rate"), "stress.abort_fail_rate"),
    }


def _ramp(check: Checker, value: Any) -> list[dict[str, int]]:
    """Steps ``{at, in_flight}`` (``at``: seconds from the test's start), sorted by ``at``.

    Before the first step nothing is submitted; of two steps at the same second the later one listed wins.
    """
    if not isinstance(value, list) or not value or len(value) > RAMP_STEPS:
        check.add("stress.ramp", f"must be a list of 1 to {RAMP_STEPS} steps {{at, in_flight}}")
        return [{"at": 0, "in_flight": 1}]
    steps: dict[int, int] = {}
    for i, raw in enumerate(value):
        field = f"stress.ramp[{i}]"
        step = check.mapping(raw, field)
        check.unknown(step, STEP_KEYS, f"{field}.")
        for key in sorted(STEP_KEYS - set(step)):
            check.add(f"{field}.{key}", "required")
        at = check.whole(step, "at", f"{field}.at", 0, 0, limit="lifetime")
        steps[at] = check.whole(step, "in_flight", f"{field}.in_flight", 1, 1, limit="jobs_in_flight")
    return [{"at": at, "in_flight": n} for at, n in sorted(steps.items())]


def _rate(check: Checker, value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        check.add(field, f"must be a share from 0 up to (not including) 1, e.g. 0.5 for half; got {value!r}")
        return None
    return float(value)

"""JSON schemas of the documents :mod:`hcflask.models.spec` validates, built
from the validator's own tables and limits, for the OpenAPI document.

``tests/models/test_spec_schema.py`` checks them against the validator: each
boundary the schema states (required keys, minimum, maximum, enums, unknown
keys, script/image) is where the validator draws it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hcflask.models.spec import (
    BLANK,
    KINDS,
    NAME_RE,
    QUEUE_PATTERN_RE,
    RAMP_STEPS,
    RESOURCE_INTS,
    TOP_BOOLS,
    TOP_INTS,
)
from hcflask.models.spec_export import ORDER
from hcflask.models.spec_inputs import inputs_schema, outputs_schema

_NON_BLANK = f"[^{BLANK.encode('unicode_escape').decode()}]"
_BLANK_ONLY = f"^[{BLANK.encode('unicode_escape').decode()}]*$"


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (OpenAPI 3.1: a list of types)."""
    return {**schema, "type": [schema["type"], "null"]}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _ints(table: Mapping[str, tuple[int, int]], limits: Mapping[str, int]) -> dict[str, Any]:
    return {key: {"type": "integer", "minimum": low, "maximum": limits[key], "default": default}
            for key, (default, low) in table.items()}


def name_schema() -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{NAME_RE.pattern}$"}


def _text(limit: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit}


def _regexes(limits: Mapping[str, int]) -> dict[str, Any]:
    return {"type": "array", "maxItems": limits["patterns"], "items": {"type": "string", "format": "regex",
                                                                       "minLength": 1}}


def workload_schema(limits: Mapping[str, int]) -> dict[str, Any]:
    number = nullable({"type": "number"})
    reference = {"oneOf": [{"type": "number"}, {"type": "null"},
                           _obj({"value": number, "lower": number, "upper": number})]}
    metric = {"oneOf": [{"type": "string", "format": "regex", "minLength": 1},
                        _obj({"pattern": {"type": "string", "format": "regex", "minLength": 1},
                              "unit": nullable({"type": "string"}), "reference": reference}, ("pattern",))]}
    code = {key: _text(limits["script"]) for key in ("script", "image", "command")}
    filled, blank = {"pattern": _NON_BLANK}, {"pattern": _BLANK_ONLY}
    return {
        **_obj({
            **code,
            "resources": _obj(_ints(RESOURCE_INTS, limits)),
            "success": _obj({"exit_code": {"type": "integer", "minimum": 0, "maximum": limits["exit_code"]},
                             "must_match": _regexes(limits), "must_not_match": _regexes(limits),
                             "not_applicable_exit_code": nullable(
                                 {"type": "integer", "minimum": 1, "maximum": limits["exit_code"]})}),
            "metrics": {"type": "object", "maxProperties": limits["metrics"],
                        "propertyNames": {"pattern": f"^{NAME_RE.pattern}$"}, "additionalProperties": metric},
        }),
        "description": "a script, or an image with a command (never both)",
        "oneOf": [
            {"required": ["script"], "properties": {"script": filled, "image": blank, "command": blank}},
            {"required": ["image", "command"], "properties": {"script": blank, "image": filled, "command": filled}},
        ],
    }


def template_schema(limits: Mapping[str, int]) -> dict[str, Any]:
    properties = {
        "name": name_schema(),
        "description": nullable(_text(limits["text"])),
        "kind": {"type": "string", "enum": list(KINDS), "default": "functional"},
        "queues": {"type": "array", "minItems": 1, "maxItems": limits["queues"],
                   "items": {"type": "string", "pattern": f"^{QUEUE_PATTERN_RE.pattern}$"}},
        **_ints(TOP_INTS, limits),
        **{key: {"type": "boolean", "default": default} for key, default in TOP_BOOLS.items()},
        "stress": nullable(stress_schema(limits)),
        "workload": workload_schema(limits),
        "inputs": {"oneOf": [{"type": "null"}, inputs_schema()]},
        "outputs": {"oneOf": [{"type": "null"}, outputs_schema()]},
    }
    # the properties in the order files and exports use (models/spec_export.py)
    return {**_obj({key: properties[key] for key in ORDER}, ("name", "queues", "workload")), **kind_rules()}


def stress_schema(limits: Mapping[str, int]) -> dict[str, Any]:
    """The ``stress`` section (issue 13): a ramp of {at, in_flight}, max_jobs, abort_fail_rate."""
    step = _obj({"at": {"type": "integer", "minimum": 0, "maximum": limits["lifetime"]},
                 "in_flight": {"type": "integer", "minimum": 1, "maximum": limits["jobs_in_flight"]}},
                ("at", "in_flight"))
    return _obj({
        "ramp": {"type": "array", "minItems": 1, "maxItems": RAMP_STEPS, "items": step},
        "max_jobs": {"type": "integer", "minimum": 1, "maximum": limits["max_jobs"]},
        "abort_fail_rate": nullable({"type": "number", "minimum": 0, "exclusiveMaximum": 1}),
    }, ("ramp", "max_jobs"))


def kind_rules() -> dict[str, Any]:
    """A functional template has no stress section; a stress one has it, neither drives the robot nor
    renews, and leaves the top-level in-flight numbers at their defaults."""
    return {"oneOf": [
        {"properties": {"kind": {"enum": ["functional"]}, "stress": {"type": "null"}}},
        {"required": ["kind", "stress"], "properties": {
            "kind": {"enum": ["stress"]}, "stress": {"type": "object"},
            "autoexclusion": {"enum": [False]}, "renew": {"enum": [False]},
            # the ramp and stress.max_jobs say these; only their defaults are allowed
            **{key: {"enum": [TOP_INTS[key][0]]} for key in ("jobs_in_flight", "max_jobs", "max_running")}}},
    ]}


def queue_schema(backends: Mapping[str, Mapping[str, Any]], limits: Mapping[str, int]) -> dict[str, Any]:
    """One alternative per backend, each with that backend's options (``option_schema``)."""
    common = {"name": name_schema(), "description": nullable(_text(limits["text"])),
              "autoexclusion": {"type": "boolean"}}
    return {"oneOf": [
        _obj({**common, "backend": {"type": "string", "enum": [name]}, "options": options},
             ("name", "backend") + (("options",) if options.get("required") else ()))
        for name, options in backends.items()
    ]}

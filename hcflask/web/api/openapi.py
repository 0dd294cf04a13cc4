"""The OpenAPI 3 description of /api/v1, served at /api/v1/openapi.json."""
from __future__ import annotations

from typing import Any

from hcflask import __version__

KINDS = ("queues", "templates", "tests", "jobs")


def _param(name: str, description: str, kind: str = "string", where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": {"type": kind}}


LIST_PARAMS = [
    _param("state", "comma-separated states (job states, test states or queue statuses)"),
    _param("queue", "queue name"),
    _param("test", "test id", "integer"),
    _param("template", "template name"),
    _param("page", "page number, from 1", "integer"),
    _param("per_page", "items per page, at most 500", "integer"),
]
ERROR = {"description": "error naming the field and the reason",
         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _write(summary: str, body: str | None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "security": [{"token": []}],
        "responses": {"200": {"description": "ok", "content": OBJECT},
                      "201": {"description": "created", "content": OBJECT},
                      "400": ERROR, "401": ERROR, "404": ERROR},
    }
    if body:
        operation["requestBody"] = {"required": True, "description": body, "content": OBJECT}
    return operation


def _read(summary: str, *params: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": list(params),
                    "responses": {"200": {"description": "ok", "content": OBJECT}, "400": ERROR}}}


def _robot_paths() -> dict[str, Any]:
    """The robot, the performance bands and the overview plots' data."""
    day_range = (_param("from", "first day, YYYY-MM-DD"), _param("to", "last day, YYYY-MM-DD"))
    return {
        "/robot/status": _read("the switch, current exclusions, open alerts, last verdicts, the rules"),
        "/robot/tiles": _read("one tile per queue for a day (success rate)", _param("day", "YYYY-MM-DD")),
        "/robot/events": _read("the robot's event log", _param("queue", "queue name"), _param("kind", "event kind"),
                               _param("since", "ISO time"), _param("limit", "at most 1000", "integer")),
        "/robot/alerts": _read("alerts, newest first", _param("open", "true: only open ones")),
        "/robot/replay": _read(
            "the rules over stored job history, pass by pass, writing nothing (docs/robot.md)",
            _param("from", "first pass, ISO time (UTC)"), _param("to", "last pass, ISO time, at most 31 days later"),
            _param("step", "time between passes: 300, 90s, 5m, 1h (at most 500 passes)"),
            _param("set", "a [robot] setting KEY=VALUE for this replay (repeatable)")),
        "/robot/switch": {"post": _write("turn auto-exclusion on or off (logged)", "{enabled: bool, reason}")},
        "/robot/bands": _read("performance bands", _param("queue", "queue name")),
        "/robot/bands/{id}/baseline": {"post": {
            **_write("pin a band's baseline window", "{from: ISO time, to: ISO time}"),
            "parameters": [_param("id", "band id", "integer", "path")]}},
        "/robot/metrics": _read("metric series with their bands (and histograms for a test)",
                                _param("queue", "queue name"), _param("test", "test id", "integer")),
        "/overview/{kind}": _read(
            "per-day data: excluded queues, jobs by outcome, the success heat map, availability/reliability",
            _param("kind", "excluded | jobs | heatmap | availability", where="path"), *day_range,
            _param("days", "the last N days when from/to are not given (default 30)", "integer")),
    }


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind in KINDS:
        paths[f"/{kind}"] = {"get": {
            "summary": f"list {kind}", "parameters": LIST_PARAMS,
            "responses": {"200": {"description": "a page", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Page"}}}}, "400": ERROR},
        }}
        key = "key" if kind in ("queues", "templates") else "id"
        paths[f"/{kind}/{{{key}}}"] = {"get": {
            "summary": f"one of {kind}" + (" (by id or name)" if key == "key" else ""),
            "parameters": [_param(key, "id" if key == "id" else "id or name",
                                  "integer" if key == "id" else "string", "path")],
            "responses": {"200": {"description": "the object", "content": OBJECT}, "404": ERROR},
        }}
    paths["/queues"]["post"] = _write("create a queue", "{name, backend, options, description, autoexclusion}")
    paths["/queues/{key}/status"] = {"post": {
        **_write("set a queue's status as an admin", "{status: online|offline|test, reason}"),
        "parameters": [_param("key", "id or name", where="path")]}}
    paths["/templates"]["post"] = _write("create a template", "the template document (see README)")
    paths["/templates/{key}"]["put"] = {
        **_write("replace a template", "the template document"),
        "parameters": [_param("key", "id or name", where="path")]}
    paths["/tests"]["post"] = _write("start a test of a template", "{template: id or name, host: driving host}")
    paths["/tests/{id}/cancel"] = {"post": {
        **_write("cancel a test", "{reason} (optional)"),
        "parameters": [_param("id", "test id", "integer", "path")]}}
    paths.update(_robot_paths())
    return {
        "openapi": "3.0.3",
        "info": {"title": "hcflask API", "version": __version__,
                 "description": "Reads are open unless read_requires_login; writes need "
                                "'Authorization: Bearer <token>' (hc token create)."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Page": {"type": "object", "properties": {
                    "items": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer"}, "page": {"type": "integer"},
                    "per_page": {"type": "integer"}, "pages": {"type": "integer"}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "field": {"type": "string", "nullable": True},
                    "reason": {"type": "string"}, "message": {"type": "string"}}}}},
            },
        },
    }

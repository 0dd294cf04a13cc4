"""The OpenAPI 3 description of /api/v1, served at /api/v1/openapi.json.

Request bodies come from the validators' own tables and limits
(:mod:`hcflask.models.spec_schema`, each backend's ``option_schema``), so the
document states the bounds the API enforces; the schemathesis run in
tests/web/test_openapi.py holds the two together.
"""
from __future__ import annotations

from typing import Any

from flask import current_app

from hcflask import __version__
from hcflask.backends import BACKEND_NAMES, OptionError, backend_class
from hcflask.models.spec import current_limits
from hcflask.models.spec_schema import name_schema, nullable, queue_schema, template_schema
from hcflask.states import JobState, QueueStatus, TestState
from hcflask.web.queries import INT64_MAX

KINDS = ("queues", "templates", "tests", "jobs")
ID = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}


def _param(name: str, description: str, schema: dict[str, Any] | None = None, where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": schema or {"type": "string"}}


def _int(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


def _states(words: Any) -> dict[str, Any]:
    """``?state=a,b``: the kind's state words (empty: no filter)."""
    return {"name": "state", "in": "query", "required": False, "style": "form", "explode": False,
            "description": "comma-separated states; unknown ones: 400",
            "schema": {"type": "array", "items": {"type": "string", "enum": ["", *(str(w) for w in words)]}}}


def _list_params(kind: str) -> list[dict[str, Any]]:
    """The filters each list reads (queries.*_query), then the page."""
    page = [_param("page", "page number, from 1", _int(1, 10**9)),
            _param("per_page", "items per page, at most 500", _int(1, 500))]
    by_kind = {
        "queues": [_states(QueueStatus), _param("backend", "backend name")],
        "templates": [_param("active", "only active (true) or inactive (false) templates",
                             {"type": "string", "enum": ["", "true", "false"]})],
        "tests": [_states(TestState), _param("template", "template name"), _param("queue", "queue name")],
        "jobs": [_states(JobState), _param("queue", "queue name"), _param("test", "test id", ID),
                 _param("template", "template name")],
    }
    return by_kind[kind] + page
OBJECT = {"application/json": {"schema": {"type": "object"}}}
REASON = nullable({"type": "string", "maxLength": 10_000})


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


READ_ERRORS = {"400": _error("a parameter is invalid (the error names it)"),
               "401": _error("read_requires_login: a login or token is needed")}
SECURITY_READ: list[dict[str, list[str]]] = [{}, {"token": []}]


#: media types a template body may have (any body is read by its Content-Type; a template file is the one
#: an admin sends as it is, so its operations list them)
DOCUMENTS = ("application/json", "application/yaml", "application/toml")


def _write(summary: str, body: dict[str, Any] | None, *, created: bool = False, path_id: dict[str, Any] | None = None,
           optional_body: bool = False, media: tuple[str, ...] = ("application/json",)) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "security": [{"token": []}],
        "responses": {"201" if created else "200": {"description": "done", "content": OBJECT},
                      "400": _error("invalid input: every problem, each naming its field"),
                      "401": _error("no, or an unknown, revoked or expired token"),
                      "403": _error("the caller's role (capped by an hcflask token's scope) may not do this: "
                                    "see the permission table in docs/admin.md"),
                      "404": _error("no such object"),
                      "409": _error("well formed, but clashes with what exists (a name taken, a test already "
                                    "finished, a partition the batch system does not know)")},
    }
    if body is not None:
        # the same body as YAML or TOML, by its Content-Type (web/api/__init__.py BODY_TYPES)
        operation["requestBody"] = {"required": not optional_body,
                                    "content": {kind: {"schema": body} for kind in media}}
        operation["responses"]["415"] = _error("a Content-Type other than application/json, application/yaml "
                                               "or application/toml")
    if path_id is not None:
        operation["parameters"] = [path_id]
    return operation


def _read(summary: str, *params: dict[str, Any], not_found: bool = False) -> dict[str, Any]:
    responses = {"200": {"description": "ok", "content": OBJECT}, **READ_ERRORS}
    if not_found:
        responses["404"] = _error("no such object")
    return {"get": {"summary": summary, "parameters": list(params), "security": SECURITY_READ,
                    "responses": responses}}


def _robot_paths() -> dict[str, Any]:
    """The robot, the performance bands and the overview plots' data."""
    from hcflask.web.robot.routes import DAY_PATTERN, EVENT_KINDS, SINCE_PATTERN

    day = {"type": "string", "pattern": f"^({DAY_PATTERN})?$", "anyOf": [{"format": "date"}, {"maxLength": 0}]}
    day_range = (_param("from", "first day, YYYY-MM-DD", day), _param("to", "last day, YYYY-MM-DD", day))
    when = nullable({"type": "string", "format": "date-time"})
    return {
        "/robot/status": _read("the switch, current exclusions, open alerts, last verdicts, the rules"),
        "/robot/tiles": _read("one tile per queue for a day (success rate)", _param("day", "YYYY-MM-DD", day)),
        "/robot/signatures": _read(
            "failure signatures (a failure's cause without node, address, time ...), with their queues and jobs",
            _param("since", "first day, YYYY-MM-DD (default: 7 days back)", day), _param("queue", "queue name")),
        "/robot/events": _read(
            "the robot's event log", _param("queue", "queue name"),
            _param("kind", "event kind", {"type": "string", "enum": ["", *EVENT_KINDS]}),
            _param("since", "hours back (a whole number) or a day YYYY-MM-DD",
                   {"type": "string", "pattern": f"^({SINCE_PATTERN})?$"}),
            _param("limit", "at most 1000", _int(1, 1000))),
        "/robot/alerts": _read("alerts, newest first",
                               _param("open", "true: only open ones", {"type": "string", "enum": ["true", "false"]})),
        "/robot/replay": _read(
            "the rules over stored job history, pass by pass, writing nothing (docs/robot.md)",
            {**_param("from", "first pass, ISO time (UTC)", {"type": "string", "format": "date-time"}),
             "required": True},
            {**_param("to", "last pass, ISO time (UTC), after from and at most 31 days later",
                      {"type": "string", "format": "date-time"}), "required": True},
            _param("step", "time between passes: 300, 90s, 5m, 1h, 1d (at most 500 passes)",
                   {"type": "string", "pattern": "^[0-9]{1,7}[smhd]?$"}),
            {"name": "set", "in": "query", "required": False, "style": "form", "explode": True,
             "description": "a [robot] setting KEY=VALUE for this replay (repeatable)",
             "schema": {"type": "array", "items": {"type": "string"}}}),
        "/robot/switch": {"post": _write("turn auto-exclusion on or off (logged)", {
            "type": "object", "required": ["enabled"], "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "reason": REASON}})},
        "/robot/bands": _read("performance bands", _param("queue", "queue name")),
        "/robot/bands/{id}/baseline": {"post": _write(
            "pin a band's baseline window (both null: back to the first jobs)",
            {"type": "object", "additionalProperties": False, "properties": {"from": when, "to": when}},
            path_id=_param("id", "band id", ID, "path"))},
        "/robot/metrics": _read("metric series with their bands (and histograms for a test)",
                                _param("queue", "queue name"), _param("test", "test id", ID), not_found=True),
        "/overview/{kind}": _read(
            "per-day data: excluded queues, jobs by outcome, the success heat map, availability/reliability",
            _param("kind", "what to count", {"type": "string",
                                             "enum": ["excluded", "jobs", "heatmap", "availability"]}, "path"),
            *day_range, _param("days", "the last N days when from/to are not given (default 30)", _int(1, 366)),
            not_found=True),
        "/audit": {"get": {
            "summary": "the audit log of every write attempt, refused ones included, newest first "
                       "(admins: a token or a session)",
            "parameters": [_param("limit", "at most 1000", _int(1, 1000))], "security": [{"token": []}],
            "responses": {"200": {"description": "ok", "content": OBJECT}, **READ_ERRORS,
                          "403": _error("admins only")}}},
    }


def _backend_options() -> dict[str, dict[str, Any]]:
    limits = current_limits()
    schemas = {}
    for name in BACKEND_NAMES:
        try:
            schemas[name] = backend_class(name).option_schema(limits)
        except OptionError:
            continue  # not installed here: creating such a queue is refused
    return schemas


def _object_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind in KINDS:
        paths[f"/{kind}"] = {"get": {
            "summary": f"list {kind}", "parameters": _list_params(kind), "security": SECURITY_READ,
            "responses": {"200": {"description": "a page", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Page"}}}}, **READ_ERRORS},
        }}
        key = "key" if kind in ("queues", "templates") else "id"
        paths[f"/{kind}/{{{key}}}"] = _read(
            f"one of {kind}" + (" (by id or name)" if key == "key" else ""),
            _param(key, "id or name", where="path") if key == "key" else _param("id", "id", ID, "path"),
            not_found=True)
    return paths


def _report_paths() -> dict[str, Any]:
    """A test's report and the comparison (issue 13)."""
    share = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
    return {
        "/tests/{id}/report": _read(
            "the report of a test: per queue success, failure reasons, distributions, throughput, cost",
            _param("id", "test id", ID, "path"), not_found=True),
        "/compare": _read(
            "test B against test A (or two queues of one test) on a metric: medians, B - A with a 95 % "
            "bootstrap interval, verdict (the parameters depend on each other: a 400 names the one at fault)",
            _param("tests", "A,B: two test ids (or one, with queues)"),
            _param("queues", "P,Q: two queues of the one test"), _param("queue", "one queue of both tests"),
            _param("metric", "run_time, queue_wait, cpu_efficiency or a workload metric"),
            _param("min_effect", "smallest difference that counts, as a share of A's median (default 0.05)",
                   share),
            _param("seed", "the bootstrap's seed (default 1)", _int(0, 2**31))),
    }


def _admin_paths(template: dict[str, Any], key: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    """Changing and deleting queues and templates, and (de)activating templates (path → method → operation)."""
    active = {"type": "boolean", "description": "false: the template starts no test and does not renew"}
    with_active = {**template, "properties": {**template["properties"], "active": active}}
    only_active = {"type": "object", "required": ["active"], "additionalProperties": False,
                   "properties": {"active": active}}
    options = {"oneOf": list(_backend_options().values())}
    queue_change = {"type": "object", "additionalProperties": False, "properties": {
        "name": name_schema(), "options": options,
        "description": nullable({"type": "string", "maxLength": limits["text"]}), "autoexclusion": {"type": "boolean"}}}
    change = _write("change a queue's name (its history follows it), backend options, description or "
                    "autoexclusion; what is left out stays (not its backend; options that do not suit the queue's "
                    "backend, another backend, a name taken without regard to case: 409)", queue_change, path_id=key)
    return {
        "/queues/{key}": {
            "put": change, "patch": change,
            "delete": _write("delete a queue; its job history stays (409 naming the jobs while any is in flight)",
                             None, path_id=key)},
        "/templates": {
            "post": _write("create a template (active: false creates it deactivated); the answer's warnings name "
                           "queues and patterns that match no queue", with_active, created=True, media=DOCUMENTS)},
        "/templates/{key}": {
            "put": _write("replace a template (active, optional, (de)activates it too)", with_active, path_id=key,
                          media=DOCUMENTS),
            "delete": _write("delete a template; its tests keep their snapshot (an active one is cancelled)",
                             None, path_id=key)},
        "/templates/{key}/active": {
            "post": _write("activate or deactivate a template", only_active, path_id=key)},
    }


def document() -> dict[str, Any]:
    limits = current_limits()
    template = template_schema(limits)
    key = _param("key", "id or name", where="path")
    paths = _object_paths()
    paths["/queues"]["post"] = _write("create a queue", queue_schema(_backend_options(), limits), created=True)
    paths["/queues/{key}/status"] = {"post": _write(
        "set a queue's status (operators and admins)",
        {"type": "object", "required": ["status"], "additionalProperties": False, "properties": {
            "status": {"type": "string", "enum": [s.value for s in QueueStatus if s != QueueStatus.EXCLUDED]},
            "reason": REASON}}, path_id=key)}
    for path, operations in _admin_paths(template, key, limits).items():
        paths.setdefault(path, {}).update(operations)
    paths["/tests"]["post"] = _write("start a test of a template", {
        "type": "object", "required": ["template"], "additionalProperties": False, "properties": {
            "template": {"oneOf": [ID, {"type": "string", "minLength": 1}]},
            "host": nullable({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "[^ \\t\\r\\n]"})}},
        created=True)
    paths["/tests/{id}/cancel"] = {"post": _write(
        "cancel a test (409 when it has ended already)",
        {"type": "object", "additionalProperties": False, "properties": {
            "reason": REASON}},
        path_id=_param("id", "test id", ID, "path"), optional_body=True)}
    paths.update(_robot_paths())
    paths.update(_report_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "hcflask API", "version": __version__,
                 "description": "Reads are open unless read_requires_login; writes need "
                                "'Authorization: Bearer <token>': an hcflask token (hc token create; its scope "
                                "caps its user's role) or an access token of the site's OIDC issuer, and a role "
                                "that may do the write (docs/admin.md has the table). "
                                f"Instance: {current_app.config['INSTANCE_NAME']}."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Page": {"type": "object", "required": ["items", "total", "page", "per_page", "pages"],
                         "properties": {"items": {"type": "array", "items": {"type": "object"}},
                                        "total": {"type": "integer"}, "page": {"type": "integer"},
                                        "per_page": {"type": "integer"}, "pages": {"type": "integer"}}},
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["status", "reason", "message"], "properties": {
                        "status": {"type": "integer"}, "field": {"type": ["string", "null"]},
                        "reason": {"type": "string"}, "message": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object", "properties": {
                            "field": {"type": "string"}, "reason": {"type": "string"}}}}}}}},
            },
        },
    }

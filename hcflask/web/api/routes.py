"""API views: list/get every object; create, change and delete queues and templates;
start and cancel tests."""
from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, NotFound

from hcflask.engine.jobs import stress
from hcflask.extensions import csrf, db
from hcflask.models import AuditEntry, Conflict, Job, Queue, Template, Test, ValidationError
from hcflask.models.spec import QUEUE_KEYS, as_whole, validate_queue
from hcflask.web import queries
from hcflask.web.api import bp, json_body, text_field
from hcflask.web.api.auth import check_read_access, permission_required, reader_required
from hcflask.web.api.openapi import document
from hcflask.web.history import queue_refs

csrf.exempt(bp)  # token-authenticated, no cookies: CSRF does not apply

LISTS = {
    "queues": queries.queues_query,
    "templates": queries.templates_query,
    "tests": queries.tests_query,
    "jobs": queries.jobs_query,
}


@bp.before_request
def _reads() -> None:
    check_read_access()


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Any:
    return jsonify({"error": {"status": exc.status, "field": exc.field, "reason": exc.reason, "message": str(exc),
                              "errors": [{"field": f, "reason": r} for f, r in exc.errors]}}), exc.status


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Any:
    response = jsonify({"error": {"status": exc.code, "field": None, "reason": exc.description,
                                  "message": f"{exc.name}: {exc.description}", "errors": []}})
    response.status_code = exc.code or 500
    response.headers.update({k: v for k, v in exc.get_headers() if k in ("Allow", "WWW-Authenticate")})
    return response


# Flask tries handlers for the status code before class handlers, the app's (the pages' 403) included
for _code in (401, 403, 404, 405):
    bp.register_error_handler(_code, _http)


def _actor() -> str:
    """The token's person, by the one name they have everywhere."""
    return str(g.api_user.username)


def _lookup(model: Any, key: str) -> Any:
    """By id, or by name for the models that have one (ids past 64 bits: not found); None if neither."""
    ident = queries.as_id(key)
    row = db.session.get(model, ident) if ident is not None else None
    if row is None and hasattr(model, "name"):
        row = db.session.scalar(select(model).where(model.name == key))
    return row


def _one(model: Any, key: str) -> Any:
    row = _lookup(model, key)
    if row is None:
        raise NotFound(f"no {model.__name__.lower()} {key!r}")
    return row


@bp.route("/openapi.json")
def openapi() -> Any:
    return jsonify(document())


@bp.route("/<any(queues, templates, tests, jobs):kind>")
def list_objects(kind: str) -> Any:
    page = queries.int_arg(request.args, "page", 1)
    per_page = queries.int_arg(request.args, "per_page", 50, high=500)
    query = LISTS[kind](request.args)
    total = queries.jobs_total(request.args) if kind == "jobs" else None
    result = queries.paginate(query, page, per_page, total)
    items = [row.to_dict() for row in result.items]
    if kind == "tests":
        counts = queries.counts_by_test([t.id for t in result.items])
        for item, test in zip(items, result.items, strict=True):
            item["jobs"] = counts[item["id"]].to_dict()
            item["queue_refs"] = [ref.to_dict() for ref in queue_refs(test)] if test.queue_names else []
            item.pop("snapshot")
    return jsonify({"items": items, "total": result.total, "page": page, "per_page": per_page,
                    "pages": result.pages})


@bp.route("/queues/<key>")
def get_queue(key: str) -> Any:
    from hcflask.engine.status import active_claims

    queue = _one(Queue, key)
    claims = [c.to_dict() for c in active_claims([queue.id]).get(queue.id, [])]
    return jsonify({**queue.to_dict(), "claims": claims, "events": [e.to_dict() for e in queue.events[:100]]})


@bp.route("/templates/<key>")
def get_template(key: str) -> Any:
    return jsonify(_one(Template, key).to_dict())


@bp.route("/tests/<int:test_id>")
def get_test(test_id: int) -> Any:
    test = _one(Test, str(test_id))
    counts = queries.counts_by_queue(test.id)
    refs = queue_refs(test) if test.queue_names else []
    per_queue = {ref.name: counts[ref.id or 0].to_dict() for ref in refs}
    return jsonify({**test.to_dict(), "jobs": queries.counts_by_test([test.id])[test.id].to_dict(),
                    "queue_refs": [ref.to_dict() for ref in refs], "queues_jobs": per_queue,
                    "stress": stress.progress(test)})


@bp.route("/jobs/<int:job_id>")
def get_job(job_id: int) -> Any:
    job = _one(Job, str(job_id))
    return jsonify({**job.to_dict(), "events": [e.to_dict() for e in job.events]})


@bp.route("/queues", methods=["POST"])
@permission_required("queue.edit")
def create_queue() -> Any:
    from hcflask.engine.actions import create_queue as create

    body = validate_queue(json_body())
    queue = create(body["name"], body["backend"], body["options"], body["description"], body["autoexclusion"])
    return jsonify(queue.to_dict()), 201


def _live_queue(key: str) -> Queue:
    queue = _one(Queue, key)
    if queue.deleted_at is not None:
        raise NotFound(f"queue {key!r} was deleted")
    return queue


@bp.route("/queues/<key>", methods=["PUT", "PATCH"])
@permission_required("queue.edit")
def update_queue(key: str) -> Any:
    """Options, description, autoexclusion, and the name (a rename keeps the queue's history); the backend stays."""
    from hcflask.engine.actions import update_queue as update
    from hcflask.engine.queue_names import check_name, rename_queue

    body = json_body(QUEUE_KEYS)
    queue = _live_queue(key)
    if "backend" in body and body["backend"] != queue.backend:
        raise Conflict("backend", "cannot be changed (the queue's jobs ran there): create another queue")
    new_name = body.pop("name", queue.name)
    if new_name != queue.name:  # checked before anything is written: a refused name changes nothing
        check_name(new_name, Queue, queue)
    body = {"options": queue.options, "description": queue.description, "autoexclusion": queue.autoexclusion,
            **body}
    try:
        update(queue, body["options"], body["description"], body["autoexclusion"])
    except ValidationError as exc:
        if exc.status == 400 and all(field.startswith("options.") for field, _ in exc.errors):
            # options valid for some backend but not this queue's: a clash with the queue, as the schema
            # (which cannot know the queue's backend) documents
            raise Conflict(exc.field, f"{exc.reason} (for this {queue.backend} queue)", exc.errors[1:]) from None
        raise
    if new_name != queue.name:
        rename_queue(queue, new_name, _actor())
    return jsonify(queue.to_dict())


@bp.route("/queues/<key>", methods=["DELETE"])
@permission_required("queue.edit")
def delete_queue(key: str) -> Any:
    from hcflask.engine.actions import delete_queue as delete

    queue = _live_queue(key)
    name = queue.name
    message = delete(queue, _actor())
    return jsonify({"deleted": name, "message": message})


@bp.route("/queues/<key>/status", methods=["POST"])
@permission_required("queue.status")
def set_queue_status(key: str) -> Any:
    from hcflask.engine.actions import set_queue_status as set_status

    body = json_body({"status", "reason"})
    queue = _live_queue(key)
    if not isinstance(body.get("status"), str):
        raise ValidationError("status", "required: online, offline or test")
    set_status(queue, body["status"], _actor(), text_field(body, "reason"))
    return jsonify(queue.to_dict())


@bp.route("/templates", methods=["POST"])
@permission_required("template.edit")
def create_template() -> Any:
    from hcflask.engine.actions import save_template, set_template_active

    body = json_body()
    active = _active_of(body)
    template = save_template(body)
    if active is False:
        set_template_active(template, False)
    return jsonify(_saved(template)), 201


def _saved(template: Template) -> dict[str, Any]:
    """A saved template, with ``warnings`` about its queues that match nothing (it is saved all
    the same: the queues may come later, but a test of it runs only on those that exist)."""
    from hcflask.engine.actions import queue_warnings

    return {**template.to_dict(), "warnings": queue_warnings(template.to_document())}


def _active_of(body: dict[str, Any]) -> bool | None:
    """``active`` of a template body (not part of the template document), taken out of it."""
    if "active" not in body:
        return None
    active = body.pop("active")
    if not isinstance(active, bool):
        raise ValidationError("active", "must be true or false")
    return active


@bp.route("/templates/<key>", methods=["PUT"])
@permission_required("template.edit")
def update_template(key: str) -> Any:
    """Replace the document; ``active`` (optional) (de)activates it too."""
    from hcflask.engine.actions import save_template, set_template_active

    body = json_body()
    active = _active_of(body)
    template = _one(Template, key)
    if not body and active is None:
        raise ValidationError("body", "give the template document, or active: true/false")
    if body:
        template = save_template(body, template)
    if active is not None:
        set_template_active(template, active)
    return jsonify(_saved(template))


@bp.route("/templates/<key>/active", methods=["POST"])
@permission_required("template.edit")
def template_active(key: str) -> Any:
    """Activate or deactivate a template without sending its document."""
    from hcflask.engine.actions import set_template_active

    active = _active_of(json_body({"active"}))
    if active is None:
        raise ValidationError("active", "required: true or false")
    template = _one(Template, key)
    set_template_active(template, active)
    return jsonify(template.to_dict())


@bp.route("/templates/<key>", methods=["DELETE"])
@permission_required("template.edit")
def delete_template(key: str) -> Any:
    """Its tests keep their snapshot; an active one is cancelled."""
    from hcflask.engine.actions import delete_template as delete

    template = _one(Template, key)
    name = template.name
    kept = delete(template, _actor())
    return jsonify({"deleted": name, "tests_kept": kept})


@bp.route("/tests", methods=["POST"])
@permission_required("test.start")
def create_test() -> Any:
    from hcflask.engine.actions import start_test

    body = json_body({"template", "host"})
    key = body.get("template")
    key = as_whole(key) if isinstance(key, float) else key
    if isinstance(key, bool) or not isinstance(key, int | str) or key == "" or (isinstance(key, int) and key < 1):
        raise ValidationError("template", "required: a template id (from 1) or name")
    template = db.session.get(Template, key) if isinstance(key, int) and key <= queries.INT64_MAX else None
    if isinstance(key, str):
        template = _lookup(Template, key)
    if template is None:
        raise Conflict("template", f"no template {key!r}")
    host = body.get("host")
    return jsonify(start_test(template, _actor(), host=host, refuse_unmatched=True).to_dict()), 201


@bp.route("/tests/<int:test_id>/cancel", methods=["POST"])
@permission_required("test.cancel")
def cancel_test(test_id: int) -> Any:
    from hcflask.engine.actions import cancel_test as cancel

    body = json_body({"reason"}, optional=True)
    test = _one(Test, str(test_id))
    cancel(test, _actor(), text_field(body, "reason"))
    return jsonify(test.to_dict())




@bp.route("/audit")
@reader_required("audit.read")
def audit() -> Any:
    limit = queries.int_arg(request.args, "limit", 200, high=1000)
    rows = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return jsonify({"items": [row.to_dict() for row in rows]})

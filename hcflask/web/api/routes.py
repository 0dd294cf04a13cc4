"""API views: list/get every object; create, change and delete queues and templates;
start and cancel tests."""
from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, NotFound

from hcflask.extensions import csrf, db
from hcflask.models import Job, Queue, Template, Test, ValidationError
from hcflask.web import queries
from hcflask.web.api import bp, json_body
from hcflask.web.api.auth import check_read_access, token_required
from hcflask.web.api.openapi import document

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
    return jsonify({"error": {"status": 400, "field": exc.field, "reason": exc.reason,
                              "message": str(exc)}}), 400


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Any:
    return jsonify({"error": {"status": exc.code, "field": None, "reason": exc.description,
                              "message": f"{exc.name}: {exc.description}"}}), exc.code


def _actor() -> str:
    return f"api:{g.api_user.username}"


def _one(model: Any, key: str) -> Any:
    """By id, or by name for the models that have one."""
    row = db.session.get(model, int(key)) if key.isdigit() else None
    if row is None and hasattr(model, "name"):
        row = db.session.scalar(select(model).where(model.name == key))
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
    result = queries.paginate(LISTS[kind](request.args), page, per_page)
    items = [row.to_dict() for row in result.items]
    if kind == "tests":
        counts = queries.counts_by_test([t.id for t in result.items])
        for item in items:
            item["jobs"] = counts[item["id"]].to_dict()
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
    per_queue = {name: c.to_dict() for name, c in queries.counts_by_queue(test.id).items()}
    return jsonify({**test.to_dict(), "jobs": queries.counts_by_test([test.id])[test.id].to_dict(),
                    "queues_jobs": per_queue})


@bp.route("/jobs/<int:job_id>")
def get_job(job_id: int) -> Any:
    job = _one(Job, str(job_id))
    return jsonify({**job.to_dict(), "events": [e.to_dict() for e in job.events]})


@bp.route("/queues", methods=["POST"])
@token_required
def create_queue() -> Any:
    from hcflask.engine.actions import create_queue as create

    body = json_body()
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ValidationError("options", "must be an object")
    queue = create(body.get("name", ""), str(body.get("backend", "")), options,
                   str(body.get("description") or ""), bool(body.get("autoexclusion", True)))
    return jsonify(queue.to_dict()), 201


def _live_queue(key: str) -> Queue:
    queue = _one(Queue, key)
    if queue.deleted_at is not None:
        raise NotFound(f"queue {key!r} was deleted")
    return queue


@bp.route("/queues/<key>", methods=["PUT"])
@token_required
def update_queue(key: str) -> Any:
    """Options, description and autoexclusion; the name and backend stay."""
    from hcflask.engine.actions import update_queue as update

    body = json_body()
    queue = _live_queue(key)
    for field in ("name", "backend"):
        if field in body and body[field] != getattr(queue, field):
            raise ValidationError(field, "cannot be changed (templates and the job history refer to it)")
    options = body.get("options", queue.options)
    if not isinstance(options, dict):
        raise ValidationError("options", "must be an object")
    autoexclusion = body.get("autoexclusion", queue.autoexclusion)
    if not isinstance(autoexclusion, bool):
        raise ValidationError("autoexclusion", "must be true or false")
    return jsonify(update(queue, options, body.get("description", queue.description), autoexclusion).to_dict())


@bp.route("/queues/<key>", methods=["DELETE"])
@token_required
def delete_queue(key: str) -> Any:
    from hcflask.engine.actions import delete_queue as delete

    queue = _live_queue(key)
    name = queue.name
    message = delete(queue, _actor())
    return jsonify({"deleted": name, "message": message})


@bp.route("/queues/<key>/status", methods=["POST"])
@token_required
def set_queue_status(key: str) -> Any:
    from hcflask.engine.actions import set_queue_status as set_status

    body = json_body()
    queue = _live_queue(key)
    set_status(queue, str(body.get("status", "")), _actor(), str(body.get("reason") or ""))
    return jsonify(queue.to_dict())


@bp.route("/templates", methods=["POST"])
@token_required
def create_template() -> Any:
    from hcflask.engine.actions import save_template, set_template_active

    body = json_body()
    active = _active_of(body)
    template = save_template(body)
    if active is False:
        set_template_active(template, False)
    return jsonify(template.to_dict()), 201


def _active_of(body: dict[str, Any]) -> bool | None:
    """``active`` of a template body (not part of the template document), taken out of it."""
    active = body.pop("active", None)
    if active is not None and not isinstance(active, bool):
        raise ValidationError("active", "must be true or false")
    return active


@bp.route("/templates/<key>", methods=["PUT"])
@token_required
def update_template(key: str) -> Any:
    """Replace the document; ``active`` (optional) (de)activates it, alone or with the document."""
    from hcflask.engine.actions import save_template, set_template_active

    body = json_body()
    active = _active_of(body)
    template = _one(Template, key)
    if body.keys() - {"id", "created_at", "updated_at"}:
        template = save_template(body, template)
    if active is not None:
        set_template_active(template, active)
    return jsonify(template.to_dict())


@bp.route("/templates/<key>", methods=["DELETE"])
@token_required
def delete_template(key: str) -> Any:
    """Its tests keep their snapshot; an active one is cancelled."""
    from hcflask.engine.actions import delete_template as delete

    template = _one(Template, key)
    name = template.name
    kept = delete(template, _actor())
    return jsonify({"deleted": name, "tests_kept": kept})


@bp.route("/tests", methods=["POST"])
@token_required
def create_test() -> Any:
    from hcflask.engine.actions import start_test

    body = json_body()
    key = body.get("template")
    if key in (None, ""):
        raise ValidationError("template", "required: a template id or name")
    try:
        template = _one(Template, str(key))
    except NotFound:
        raise ValidationError("template", f"no template {key!r}") from None
    host = body.get("host")
    return jsonify(start_test(template, _actor(), host=str(host) if host is not None else None).to_dict()), 201


@bp.route("/tests/<int:test_id>/cancel", methods=["POST"])
@token_required
def cancel_test(test_id: int) -> Any:
    from hcflask.engine.actions import cancel_test as cancel

    body = request.get_json(silent=True) or {}
    test = _one(Test, str(test_id))
    cancel(test, _actor(), str(body.get("reason") or "") if isinstance(body, dict) else "")
    return jsonify(test.to_dict())


@bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE"])
def unknown(_rest: str) -> Any:
    raise NotFound(f"no API endpoint {request.method} {request.path} (see /api/v1/openapi.json)")



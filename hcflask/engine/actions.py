"""What users ask for (from the UI, the API or the CLI), in one place.

Views and commands stay thin: they parse input, call one of these, and
render the outcome.  Cancelling only *marks* jobs; the scheduler process
talks to the backends (so web replicas never need batch-system access).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from hcflask.backends import OptionError, backend_class
from hcflask.engine.hosts import check_host
from hcflask.extensions import db
from hcflask.models import Queue, Template, Test, ValidationError, utcnow
from hcflask.models.spec import NAME_RE
from hcflask.states import QueueStatus, TestState


def create_queue(name: str, backend: str, options: Mapping[str, Any] | None = None,
                 description: str = "", autoexclusion: bool = True) -> Queue:
    """A new queue, its backend options validated now rather than at first submit."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError("name", "letters, digits, '_', '.', '-' (at most 128)")
    if db.session.scalar(select(Queue).where(Queue.name == name)):
        raise ValidationError("name", f"a queue named {name!r} exists already")
    cleaned = validate_queue_options(backend, options or {})
    queue = Queue(name=name, backend=backend, options=cleaned, description=description,
                  autoexclusion=autoexclusion, status=QueueStatus.ONLINE.value)
    db.session.add(queue)
    db.session.commit()
    return queue


def validate_queue_options(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    try:
        config = current_app.config["BACKENDS"].get(backend, {})
        return backend_class(backend).validate_options(options, config)
    except OptionError as exc:
        field = "backend" if exc.field == "backend" else f"options.{exc.field}"
        raise ValidationError(field, exc.reason) from None


def discover_queues(backend: str) -> list[dict[str, Any]]:
    """What a backend's batch system offers (raises ValidationError if it cannot say)."""
    from hcflask.backends import BackendUnavailable
    from hcflask.engine.common import backend as get

    try:
        return get(backend).discover_queues()
    except OptionError as exc:
        raise ValidationError("backend", exc.reason) from None
    except BackendUnavailable as exc:
        raise ValidationError("backend", f"{backend} cannot be reached: {exc}") from None


def set_queue_status(queue: Queue, status: str, actor: str, reason: str = "") -> None:
    """An admin's status change, through the one owner of queue status (never ``excluded``)."""
    from hcflask.engine import status as owner

    owner.admin_set(queue, status, actor, reason)


def save_template(document: Any, template: Template | None = None) -> Template:
    """Create a template, or update ``template``, from a document (validated)."""
    doc = dict(document) if isinstance(document, Mapping) else document
    if template is None:
        template = Template.from_document(doc)
    else:
        template.update_from(doc)
    clash = db.session.scalar(select(Template).where(Template.name == template.name))
    if clash is not None and clash is not template:
        db.session.rollback()
        raise ValidationError("name", f"a template named {template.name!r} exists already")
    db.session.add(template)
    db.session.commit()
    return template


def start_test(template: Template, actor: str, start_at: datetime | None = None, host: str | None = None) -> Test:
    """A new test of ``template``; the core tick starts it when it is due.

    ``host`` assigns the test to one service (scale-out): a known host, or
    this one; by default the core's host drives it.
    """
    if not template.active:
        raise ValidationError("template", f"template {template.name!r} is deactivated")
    if host is not None:
        check_host(host)
    test = Test.from_template(template, start_at=start_at, created_by=actor)
    test.host = host
    db.session.add(test)
    db.session.commit()
    return test


def cancel_test(test: Test, actor: str, reason: str = "") -> None:
    """Mark a test cancelled; the core tick cancels its jobs in the backends."""
    if TestState(test.state).final:
        raise ValidationError("state", f"test {test.id} is already {test.state}")
    test.state = TestState.CANCELLED.value
    test.finished_at = utcnow()
    test.note = reason or f"cancelled by {actor}"
    db.session.commit()


def move_test(test: Test, host: str, actor: str) -> Test:
    """Move a test, and with it its jobs in flight, to another host (by name, as an adoption)."""
    old = test.host
    test.host = check_host(host)
    test.note = (test.note + "; " if test.note else "") + f"moved from {old or '-'} to {host} by {actor}"
    db.session.commit()
    return test

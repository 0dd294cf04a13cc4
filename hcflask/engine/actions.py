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
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from hcflask.backends import OptionError, backend_class
from hcflask.engine.queue_names import check_name, mark_deleted
from hcflask.engine.service.clock import db_now
from hcflask.engine.service.hosts import check_host, take_over
from hcflask.extensions import db
from hcflask.models import (
    Conflict,
    Job,
    Queue,
    Template,
    Test,
    User,
    ValidationError,
    load_all,
    match_queues,
    messages,
    utcnow,
)
from hcflask.models.names import shown
from hcflask.models.spec import validate_queue
from hcflask.states import IN_FLIGHT_JOB_STATES, QueueStatus, TestState

ACTIVE_TESTS = (TestState.SCHEDULED.value, TestState.RUNNING.value)


def create_queue(name: str, backend: str, options: Mapping[str, Any] | None = None,
                 description: str = "", autoexclusion: bool = True) -> Queue:
    """A new queue, its backend options validated now rather than at first submit."""
    body = validate_queue({"name": name, "backend": backend, "options": dict(options or {}),
                           "description": description, "autoexclusion": autoexclusion})
    check_name(name, Queue)
    cleaned = validate_queue_options(backend, body["options"])
    queue = Queue(name=name, backend=backend, options=cleaned, description=description,
                  autoexclusion=autoexclusion, status=QueueStatus.ONLINE.value)
    db.session.add(queue)
    _commit_named(queue.name, "queue")
    return queue


def update_queue(queue: Queue, options: Mapping[str, Any], description: str, autoexclusion: bool) -> Queue:
    """Change a queue's backend options, description and opt-out (not its name or backend:
    templates and the job history refer to those)."""
    body = validate_queue({"name": queue.name, "backend": queue.backend, "options": options,
                           "description": description, "autoexclusion": autoexclusion})
    try:
        queue.options = validate_queue_options(queue.backend, body["options"])
    except ValidationError as exc:  # well formed, but not what this queue's backend takes
        raise Conflict(exc.field, f"{exc.reason} (a {queue.backend} queue)") from None
    queue.description = body["description"] or ""
    queue.autoexclusion = body["autoexclusion"]
    db.session.commit()
    return queue


def delete_queue(queue: Queue, actor: str) -> str:
    """Delete a queue, keeping its job history; refused while any of its jobs is in flight.

    A queue without jobs goes for good.  One with history stays as a hidden,
    offline row renamed ``<name>.deleted-<id>`` (engine/queue_names.py: one write,
    or a 409 before any), so its jobs keep their queue and the name is free for
    a new queue.  Returns what was done, in words.
    """
    in_flight = db.session.execute(select(Job.id, Job.test_id).where(
        Job.queue_id == queue.id, Job.state.in_([s.value for s in IN_FLIGHT_JOB_STATES])
    ).order_by(Job.id)).all()
    if in_flight:
        jobs = ", ".join(str(j) for j, _ in in_flight[:10]) + (" ..." if len(in_flight) > 10 else "")
        tests = ", ".join(sorted({str(t) for _, t in in_flight}, key=int))
        raise Conflict("queue", f"queue {queue.name} has {len(in_flight)} job(s) in flight (jobs {jobs} "
                                       f"of tests {tests}): set it offline or cancel those tests, then delete it "
                                       "once they have ended")
    name = queue.name
    if not _referenced(queue):
        db.session.delete(queue)
        db.session.commit()
        return f"queue {name} deleted"
    return mark_deleted(queue, actor)


def _referenced(queue: Queue) -> list[str]:
    """The tables (other than its own status history) with rows that point at ``queue``:
    jobs, claims, bands, rollups... any of them, and the row must stay."""
    load_all()  # every table, also of the models an hc command has not declared yet
    found = []
    for table in db.metadata.sorted_tables:
        if table.name == "queue_event":
            continue
        for key in table.foreign_keys:
            if key.column.table.name == "queue" and db.session.execute(
                    select(key.parent).where(key.parent == queue.id).limit(1)).first():
                found.append(table.name)
    return found


def validate_queue_options(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    try:
        config = current_app.config["BACKENDS"].get(backend, {})
        return backend_class(backend).validate_options(options, config)
    except OptionError as exc:
        field = "backend" if exc.field == "backend" else f"options.{exc.field}"
        raise (Conflict if exc.conflict else ValidationError)(field, exc.reason) from None


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
    try:
        check_name(template.name, Template, template)
    except ValidationError:
        db.session.rollback()
        raise
    db.session.add(template)
    _commit_named(template.name, "template")
    return template


def _commit_named(name: str, kind: str) -> None:
    """Commit a new or renamed row; another writer taking the name first is a 409, as the check's."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("name", f"a {kind} named {shown(name)} exists already") from None


def import_template(document: Any) -> tuple[Template, str]:
    """``hc template import`` and the import page: create the template, or replace the one of the
    same name, from a file's document; a deactivated one is activated again.  Returns it and what
    was done ("created", "saved", "saved, active again")."""
    if not isinstance(document, Mapping):
        raise ValidationError("file", "expected a mapping (field: value) at the top level")
    existing = db.session.scalar(select(Template).where(Template.name == document.get("name")))
    template = save_template(document, existing)
    again = not template.active
    set_template_active(template, True)
    return template, ("saved" if existing else "created") + (", active again" if again else "")


def set_template_active(template: Template, active: bool) -> bool:
    """(De)activate a template; True if that changed it.  A deactivated template
    starts no test and does not renew; its running tests go on."""
    if template.active == active:
        return False
    template.active = active
    db.session.commit()
    return True


def delete_template(template: Template, actor: str) -> int:
    """Delete a template; its tests keep their snapshot.  A scheduled or running test
    of it is cancelled first (else renewal would start the next one at once).
    Returns the number of tests kept."""
    tests = list(db.session.scalars(select(Test).where(Test.template_id == template.id)))
    for test in tests:
        if test.state in ACTIVE_TESTS:
            test.state, test.finished_at = TestState.CANCELLED.value, utcnow()
            test.note = f"cancelled: template {template.name} deleted by {actor}"
        test.template_id = None
    db.session.execute(update(Job).where(Job.template_id == template.id).values(template_id=None))
    db.session.delete(template)
    db.session.commit()
    return len(tests)


def remove_user(user: User, by: User | None = None) -> None:
    """Remove a user and their API tokens; from the web, never the one logged in."""
    if by is not None and by.id == user.id:
        raise ValidationError("user", "you cannot remove yourself while logged in")
    db.session.delete(user)
    db.session.commit()


def set_user_disabled(user: User, disabled: bool, by: User | None = None) -> None:
    """Disable (or enable) a user: no sign-in, no token, the session ends at the next page.
    Never the one doing it, so an instance cannot lose its last admin by a click."""
    if by is not None and by.id == user.id:
        raise ValidationError("user", "you cannot disable yourself")
    user.disabled = disabled
    db.session.commit()


def unmatched_queues(patterns: list[str]) -> list[str]:
    """The names and patterns of ``patterns`` that match no queue (deleted ones do not count)."""
    names = list(db.session.scalars(Queue.live().with_only_columns(Queue.name)))
    return [pattern for pattern in patterns if not match_queues([pattern], names)]


def queue_warnings(document: Mapping[str, Any]) -> list[str]:
    """What to tell whoever saves a template whose queues (some or all) do not exist: it is saved
    (the queues may come later), but a test runs only on queues that exist when it starts."""
    return [f"queues: {messages.pattern_matches_nothing(p)}" for p in unmatched_queues(list(document["queues"]))]


def start_test(template: Template, actor: str, start_at: datetime | None = None, host: str | None = None,
               refuse_unmatched: bool = False) -> Test:
    """A new test of ``template``; the core tick starts it when it is due.

    ``host`` assigns the test to one service (scale-out): a known host, or
    this one; by default the core's host drives it.  ``refuse_unmatched``
    (the CLI, the API and the pages): a template none of whose queues
    exists is refused now, in words, rather than scheduled to end in
    ``error`` at the next tick.
    """
    if not template.active:
        raise Conflict("template", f"template {template.name!r} is deactivated")
    if refuse_unmatched and len(unmatched_queues(template.queues)) == len(template.queues):
        raise Conflict("queues", f"{messages.no_queue_matches(template.queues)}: a test of {template.name} "
                                 "would end in error (add a queue, or change the template's queues)")
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
        raise Conflict("state", f"test {test.id} is already {test.state}")
    test.state = TestState.CANCELLED.value
    test.finished_at = utcnow()
    test.note = reason or f"cancelled by {actor}"
    db.session.commit()


def move_test(test: Test, host: str, actor: str) -> Test:
    """Move a test, and with it its jobs in flight, to another host (by name, as an adoption)."""
    old = test.host
    if not take_over(test, check_host(host), db_now(), f"moved from {old or '-'} to {host} by {actor}"):
        raise Conflict("host", f"test {test.id} changed hands while it was being moved: try again")
    db.session.commit()
    return test

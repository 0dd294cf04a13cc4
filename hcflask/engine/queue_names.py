"""Naming, renaming and deleting queues: the writes that touch a queue's name.

Every path (CLI, API, form) comes here, so the rules of models/names.py and
the checks below hold the same everywhere.  A deletion is one transaction:
the admin's ``offline`` claim, the ``deleted_at`` mark and the reserved name
are written by one compare-and-set of the queue row (engine/status.py), and a
name clash is found and refused (409) before anything is written, so a
deletion never leaves a queue offline but undeleted.
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from hcflask.engine import status as owner
from hcflask.extensions import db
from hcflask.models import Alert, Conflict, Queue, RobotEvent, Template, ValidationError, utcnow
from hcflask.models.names import deleted_name, name_key, name_problem, shown
from hcflask.states import QueueStatus


def check_name(name: str, model: type[Queue] | type[Template], row: Queue | Template | None = None) -> None:
    """``name`` is valid and free for ``row`` (a new one if None), without regard to case."""
    problem = name_problem(name)
    if problem:
        raise ValidationError("name", problem)
    kind = model.__name__.lower()
    clash: Queue | Template | None = db.session.scalar(  # type: ignore[assignment]
        select(model).where(model.name_key == name_key(name)))
    if clash is not None and clash is not row:
        same = "" if clash.name == name else f" ({clash.name}: names are the same without regard to case)"
        raise Conflict("name", f"a {kind} named {shown(name)} exists already{same}")


def rename_queue(queue: Queue, new: str, actor: str) -> str:
    """Rename a live queue; its jobs, tests, claims and bands follow (they hold its id).

    Templates that name the queue exactly are changed to the new name (a
    pattern is left as it is: it may mean other queues too), and the robot's
    log and alerts about this queue since it was created follow it.
    Returns what was done, in words.
    """
    if queue.deleted_at is not None:
        raise Conflict("queue", f"queue {shown(queue.name)} was deleted; it cannot be renamed")
    old = queue.name
    if new == old:
        raise ValidationError("name", f"the queue is called {shown(old)} already")
    check_name(new, Queue, queue)
    queue.name = new
    changed = []
    for template in db.session.scalars(select(Template).order_by(Template.name)):
        if old in (template.queues or []):
            template.queues = [new if q == old else q for q in template.queues]
            changed.append(template.name)
    for model, since in ((RobotEvent, RobotEvent.time), (Alert, Alert.opened_at)):
        db.session.execute(update(model).where(model.queue == old, since >= queue.created_at)
                           .values(queue=new).execution_options(synchronize_session=False))
    _commit(f"a queue named {shown(new)} was created meanwhile")
    templates = f"; templates naming it changed too: {', '.join(changed)}" if changed else ""
    return f"queue {old} renamed to {new} by {actor}; its history stays with it{templates}"


def mark_deleted(queue: Queue, actor: str) -> str:
    """Hide a queue that has history: offline, marked deleted, renamed ``<name>.deleted-<id>``,
    all in one write; or a Conflict before anything changed."""
    name = queue.name
    hidden = deleted_name(name, queue.id)
    clash = db.session.scalar(select(Queue).where(Queue.name_key == name_key(hidden), Queue.id != queue.id))
    if clash is not None:  # possible only for a queue made before the suffix was reserved
        raise Conflict("queue", f"queue {name} cannot be deleted: its row would be renamed {hidden}, which queue "
                                f"{clash.name} is called; rename that one first (hc queue rename {clash.name} NEW)")
    reason = f"queue deleted by {actor}"
    row = {"name": hidden, "name_key": name_key(hidden), "deleted_at": utcnow()}

    def plan(seen: owner.Seen, _conflict: bool) -> owner.Plan:
        mine = seen.claim("admin")
        return owner.Plan(actor, reason, rule="deleted",
                          add=[{"source": "admin", "status": QueueStatus.OFFLINE.value, "actor": actor,
                                "reason": reason}],
                          release=[(mine, "admin")] if mine else [], row=row)

    try:
        written = owner.change(queue.id, plan)
    except IntegrityError:
        db.session.rollback()
        raise Conflict("queue", f"queue {name} cannot be deleted: a queue named {hidden} was created meanwhile; "
                                "rename that one first") from None
    if not written.done:
        raise Conflict("queue", f"queue {name} was not deleted: {written.why}")
    db.session.refresh(queue)
    return f"queue {name} deleted; its job history stays under {queue.name}"


def _commit(clash: str) -> None:
    """Commit, turning a lost race on the unique name key into a 409 (nothing written)."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("name", clash) from None

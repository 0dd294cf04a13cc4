"""What happens outside hcflask when the robot excludes, recovers or alerts.

Configured per backend in ``hc.toml`` (``default`` applies to every backend
without its own entry, and to alerts that name no backend)::

    [robot.actions.slurm]
    exclude = [{type = "command", argv = ["scontrol", "update", "PartitionName={queue}", "State=DRAIN"]}]
    recover = [{type = "command", argv = ["scontrol", "update", "PartitionName={queue}", "State=UP"]}]
    # an exclude command may name its ``undo``: run when the outage guard rolls the exclusion back
    # (Slurm refuses a Reason= on a partition update: the drain would fail every time)
    alert = [{type = "webhook", url = "https://chat.example/hook", timeout = 5, retries = 2}]

No entry means "record only".  Commands are argument lists run through the
one command seam (no shell), each argument filled from the event with
``str.format`` fields (``{queue}``, ``{backend}``, ``{rule}``, ``{reason}``,
``{event}``, ``{old_status}``, ``{new_status}``, ``{job_ids}``, ``{title}``,
``{kind}``, ``{time}``, ``{delivery}``).  Webhooks get the event as JSON.

Actions go through an outbox (:class:`~hcflask.models.Delivery`): every
writer adds the deliveries of its event in the transaction that commits the
event (:func:`outbox`, :func:`enqueue`), so a crash leaves both or neither.
The actions tick (:func:`deliver`) runs them later, outside any transaction
and on no other tick's thread, each with its timeout (the action's
``timeout``, else ``action_timeout``), retried with exponential backoff
(``action_backoff_seconds``, doubled per attempt) up to ``action_retries``
times.  The outcome is an ``action`` row next to its event; a delivery that
failed for good opens a ``robot`` alert until that action works again.

Order and honesty (docs/operations.md "Robot actions"):

* every delivery has an ordering key, its lane (:func:`ordering_key`): the
  event's backend and queue, and the channel -- all commands of one queue
  share a lane, a webhook has one per receiver.  A delivery runs only when
  no earlier delivery of its lane is pending (waiting, running or backing
  off), so an exclude and its undo or recover never swap;
* an attempt is counted when it is claimed, so a deliverer that dies in an
  action (a crash loop) still spends the retries; the claim is held for
  twice the action's own timeout plus 5 s, longer than a run can take, so
  two deliverers never run one row at the same time;
* delivery is at least once (a crash after the action ran and before its
  outcome was written runs it again): each delivery has a stable id, sent as
  the ``X-HC-Delivery`` header and the ``delivery`` field, and filled into
  commands as ``{delivery}``, so receivers can drop duplicates.

What is shown or stored about an action never holds its secrets
(:mod:`hcflask.engine.runaction`, which also runs one action).  Alerts about
an action are keyed by its place in hc.toml, never by its URL.
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import exists, select, update
from sqlalchemy.orm import aliased

from hcflask.engine.runaction import run_action, scrub, shown
from hcflask.extensions import db
from hcflask.models import Delivery, RobotEvent, iso, utcnow

log = logging.getLogger("hcflask.robot")


def event_data(event: RobotEvent, **extra: Any) -> dict[str, Any]:
    """The fields an action can use, from a committed event."""
    return {
        "event": event.kind, "id": event.id, "queue": event.queue or "", "backend": event.backend or "",
        "rule": event.rule or "", "reason": event.message, "job_ids": list(event.job_ids or []),
        "time": iso(event.time), "old_status": "", "new_status": "", "title": "", "kind": "", **extra,
    }


def actions_for(config: Mapping[str, Any], backend: str | None, event: str) -> list[dict[str, Any]]:
    per_backend = config.get("actions") or {}
    chosen = per_backend.get(backend or "") or per_backend.get("default") or {}
    return list(chosen.get(event) or [])


def _key(backend: str | None, config: Mapping[str, Any]) -> str:
    per_backend = config.get("actions") or {}
    return backend if backend and per_backend.get(backend) else "default"


def fingerprint(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def ordering_key(event: RobotEvent, entry: Mapping[str, Any]) -> str:
    """The lane of a delivery: ``<backend>/<queue> <channel>``.

    Every command of one queue shares a lane, whatever its program: an
    exclude, its undo and the recover may use different programs but act on
    the same partition.  A webhook has a lane per receiver (scheme, host and
    port, never the name an admin gave it), so a dead chat server never
    holds the batch system's commands back.  Events of no queue (alerts)
    share the lane of their backend (``-`` for none).
    """
    channel = str(entry["type"])
    if channel == "webhook":
        try:
            url = urlsplit(str(entry["url"]))
            channel += f" {url.scheme}://{url.hostname or '?'}" + (f":{url.port}" if url.port else "")
        except ValueError:
            channel += " ?"
    return f"{event.backend or '-'}/{event.queue or '-'} {channel}"[:255]


def _target(entry: Mapping[str, Any]) -> str:
    """What readers may see of an action (:func:`shown`)."""
    return shown(entry)[:255] if entry["type"] != "record" else ""


def outbox(event: RobotEvent, data: Mapping[str, Any] | None = None) -> list[Delivery]:
    """The outbox rows for ``event``, not yet in the session: for a writer that adds
    its records itself inside its own transaction (as the queue-status writes do)."""
    config = current_app.config["ROBOT"]
    values = {k: v for k, v in (data if data is not None else event_data(event)).items() if k != "id"}
    kind = "alert" if event.kind.startswith("alert") else event.kind
    key = _key(event.backend, config)
    return [Delivery(event=event, action=entry["type"], config_key=f"{key}.{kind}.{index}",
                     fingerprint=fingerprint(entry), target=_target(entry), data=values, state="pending",
                     attempts=0, last_error="", next_attempt_at=utcnow(), uid=str(uuid.uuid4()),
                     ordering_key=ordering_key(event, entry))
            for index, entry in _entries(config, event.backend, kind)]


def enqueue(event: RobotEvent, data: Mapping[str, Any] | None = None) -> list[Delivery]:
    """Put the actions configured for ``event`` in the outbox, in the caller's transaction.

    Call it before committing the decision: the event and its deliveries are
    committed together, and the actions tick delivers them afterwards.  The
    event needs no id yet (the action gets it when it runs).
    """
    rows = outbox(event, data)
    db.session.add_all(rows)
    return rows


def _entries(config: Mapping[str, Any], backend: str | None, kind: str) -> list[tuple[int, dict[str, Any]]]:
    """The actions of an event kind with their index in hc.toml; a rollback runs the ``undo``
    of each exclude command that has one."""
    if kind != "rollback":
        return list(enumerate(actions_for(config, backend, kind)))
    return [(i, {**entry, "argv": entry["undo"]}) for i, entry in enumerate(actions_for(config, backend, "exclude"))
            if entry["type"] == "command" and entry.get("undo")]


def _entry(config: Mapping[str, Any], config_key: str, fingerprint_: str) -> Mapping[str, Any] | None:
    """The configured action a delivery stands for, unless hc.toml changed it since."""
    backend, kind, index = config_key.rsplit(".", 2)
    for i, entry in _entries(config, None if backend == "default" else backend, kind):
        if i == int(index) and fingerprint(entry) == fingerprint_:
            return entry
    return None


def _timeout(config: Mapping[str, Any], entry: Mapping[str, Any] | None) -> float:
    return float((entry or {}).get("timeout", config.get("action_timeout", 10.0)))


def _waiting() -> Any:
    """True for a row with an earlier pending row in its lane: it must wait its turn."""
    earlier = aliased(Delivery)
    return exists(select(earlier.id).where(earlier.ordering_key == Delivery.ordering_key,
                                           earlier.state == "pending", earlier.id < Delivery.id))


def deliver(limit: int = 50) -> dict[str, int]:
    """The actions tick: run due deliveries, each outside any transaction.

    Only the head of each lane is due (:func:`ordering_key`); when it is
    delivered or fails for good, the next row of its lane runs in the same
    tick.  Each row is tried at most once per tick, ``limit`` rows in all.
    A failure is retried with exponential backoff until ``action_retries``
    retries are spent; then the row is ``failed`` and a ``robot`` alert stays
    open until that action works again.
    """
    config = current_app.config["ROBOT"]
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    tried: set[int] = set()
    while len(tried) < limit:
        due = db.session.execute(select(
            Delivery.id, Delivery.next_attempt_at, Delivery.config_key, Delivery.fingerprint,
        ).where(Delivery.state == "pending", Delivery.next_attempt_at <= utcnow(), Delivery.id.not_in(tried),
                ~_waiting()).order_by(Delivery.id).limit(limit - len(tried))).all()
        db.session.commit()
        if not due:
            break
        for row_id, due_at, config_key, fingerprint_ in due:
            tried.add(row_id)
            outcome = _deliver_one(config, row_id, due_at, _entry(config, config_key, fingerprint_))
            if outcome:
                counts[outcome] += 1
    return counts


def _claim(config: Mapping[str, Any], row_id: int, due_at: datetime, entry: Mapping[str, Any] | None) -> int:
    """Take the row (compare-and-set on ``next_attempt_at``, and still the head of its lane) and count
    the attempt now; the attempt's number, or 0 if another deliverer has it.

    The hold outlasts any run: a command is killed at its timeout, a webhook
    gives up on a connection or read that takes longer."""
    hold = utcnow() + timedelta(seconds=2 * _timeout(config, entry) + 5)
    done = db.session.execute(update(Delivery).where(
        Delivery.id == row_id, Delivery.state == "pending", Delivery.next_attempt_at == due_at, ~_waiting(),
    ).values(next_attempt_at=hold, attempts=Delivery.attempts + 1).execution_options(synchronize_session=False))
    claimed = bool(done.rowcount)  # type: ignore[attr-defined]
    attempt = db.session.scalar(select(Delivery.attempts).where(Delivery.id == row_id)) if claimed else 0
    db.session.commit()
    return int(attempt or 0)


def _retries(config: Mapping[str, Any], entry: Mapping[str, Any] | None) -> int:
    return int((entry or {}).get("retries", config.get("action_retries", 8)))


def _deliver_one(config: Mapping[str, Any], row_id: int, due_at: datetime, entry: Mapping[str, Any] | None) -> str:
    attempt = _claim(config, row_id, due_at, entry)
    if not attempt:
        return ""
    row = db.session.get_one(Delivery, row_id)
    data = {**row.data, "id": row.event_id, "delivery": row.uid}
    db.session.commit()  # nothing open while the action runs
    if entry is None:
        ok, message = False, f"action {row.config_key} is no longer configured as it was; not run"
    elif attempt > _retries(config, entry) + 1:
        ok, message = False, (f"not run again: {attempt - 1} attempts were claimed and none finished "
                              "(the deliverer stopped during the action?)")
    else:
        try:
            ok, message = run_action(config, entry, data)
        except Exception as exc:  # noqa: BLE001 - an action must never stop the deliverer
            ok, message = False, f"{type(exc).__name__}: {exc}"
        message = scrub(message, entry)
    return _record(config, row_id, attempt, entry, ok, message)


def _record(config: Mapping[str, Any], row_id: int, attempt: int, entry: Mapping[str, Any] | None, ok: bool,
            message: str) -> str:
    """Write the outcome of attempt ``attempt``, unless the row was claimed again meanwhile
    (the row is locked until the outcome commits, where the database can lock a row)."""
    row = db.session.get_one(Delivery, row_id, populate_existing=True, with_for_update=True)
    if row.state != "pending" or row.attempts != attempt:
        log.warning("robot action %s: attempt %d ended after its claim expired; outcome not recorded: %s",
                    row.uid, attempt, message)
        db.session.rollback()
        return ""
    event = db.session.get_one(RobotEvent, row.event_id)
    now = utcnow()
    if ok:
        row.state, row.delivered_at, row.last_error = "delivered", now, ""
        outcome = "delivered"
    elif entry is not None and attempt <= _retries(config, entry):
        backoff = float(config.get("action_backoff_seconds", 5.0)) * 2 ** (attempt - 1)
        row.next_attempt_at, row.last_error = now + timedelta(seconds=min(backoff, 3600.0)), message[:2000]
        outcome = "retry"
    else:
        row.state, row.last_error = "failed", message[:2000]
        outcome = "failed"
    if not ok:
        log.warning("robot action %s for event %s failed (attempt %d): %s", row.action, event.id, attempt,
                    message)
    if outcome != "retry":
        db.session.add(RobotEvent(kind="action", queue=event.queue, backend=event.backend, rule=row.action,
                                  parent_id=event.id, alert_id=event.alert_id, ok=ok,
                                  message=f"{message[:1900]} (attempt {attempt})"))
    _action_alert(row, event, ok or outcome == "retry", message)
    db.session.commit()
    return outcome


def _action_alert(row: Delivery, event: RobotEvent, ok: bool, message: str) -> None:
    """An action that failed for good keeps a ``robot`` alert open until that action works again.

    Its own open/close events are logged but run no actions (no loops).
    """
    from hcflask.engine.robot.alerts import close_alert, find_open, raise_alert

    key = f"action:{row.config_key}"
    if not ok:
        raise_alert("robot", key, f"{row.action} action failing for {event.backend or 'alerts'}",
                    f"{event.kind} {event.queue or ''}: {message[:500]}", backend=event.backend)
    elif (alert := find_open(key)) is not None:
        close_alert(alert, "the action works again")

"""What happens outside hcflask when the robot excludes, recovers or alerts.

Configured per backend in ``hc.toml`` (``default`` applies to every backend
without its own entry, and to alerts that name no backend)::

    [robot.actions.slurm]
    exclude = [{type = "command", argv = ["scontrol", "update", "PartitionName={queue}",
                                         "State=DRAIN", "Reason=hcflask: {rule}"]}]
    recover = [{type = "command", argv = ["scontrol", "update", "PartitionName={queue}", "State=UP"]}]
    # an exclude command may name its ``undo``: run when the outage guard rolls the exclusion back
    alert = [{type = "webhook", url = "https://chat.example/hook", timeout = 5, retries = 2}]

No entry means "record only".  Commands are argument lists run through the
one command seam (no shell), each argument filled from the event with
``str.format`` fields (``{queue}``, ``{backend}``, ``{rule}``, ``{reason}``,
``{event}``, ``{old_status}``, ``{new_status}``, ``{job_ids}``, ``{title}``,
``{kind}``, ``{time}``).  Webhooks get the event as JSON.

Actions go through an outbox (:class:`~hcflask.models.Delivery`): the robot
calls :func:`enqueue` before it commits its decision, so the event and its
deliveries are committed together; the actions tick (:func:`deliver`) runs
them later, outside any transaction and on no other tick's thread, with a
timeout each (``action_timeout``), retried with exponential backoff
(``action_backoff_seconds``, doubled per attempt) up to ``action_retries``
times.  The outcome is an ``action`` row next to its event; a delivery that
failed for good opens a ``robot`` alert until that action works again.

What is shown or stored about an action never holds its secrets: a webhook
appears as its scheme and host, a command by its ``name`` (default: the
base name of its program), and outcome texts are scrubbed of the URL, the
header values and the arguments (:func:`shown`, :func:`scrub`).  Alerts
about an action are keyed by its place in hc.toml, never by its URL.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import select, update

from hcflask.backends import BackendUnavailable
from hcflask.backends.runner import run
from hcflask.config import ConfigError
from hcflask.extensions import db
from hcflask.models import Delivery, RobotEvent, iso, utcnow

log = logging.getLogger("hcflask.robot")
EVENTS = ("exclude", "recover", "alert")
TYPES = {"record": set(), "command": {"argv", "undo", "timeout", "name"},
         "webhook": {"url", "timeout", "retries", "headers", "name"}}
HIDDEN = "…"


def shown(entry: Mapping[str, Any]) -> str:
    """How an action appears to readers: a webhook as scheme://host, a command by its name."""
    if entry.get("name"):
        return str(entry["name"])
    if entry.get("type") == "webhook":
        try:
            url = urlsplit(str(entry.get("url", "")))
            return f"{url.scheme}://{url.hostname or '?'}" + (f":{url.port}" if url.port else "")
        except ValueError:
            return "webhook"
    if entry.get("type") == "command":
        return os.path.basename(str((entry.get("argv") or ["command"])[0])) or "command"
    return str(entry.get("type", "action"))


def scrub(text: str, entry: Mapping[str, Any], argv: list[str] | None = None) -> str:
    """``text`` without the action's URL (path, query, credentials), header values or arguments."""
    secrets = []
    if entry.get("url"):
        url = str(entry["url"])
        split = urlsplit(url)
        secrets += [url, split.path + (f"?{split.query}" if split.query else ""), split.path, split.query,
                    split.netloc if split.username else ""]
    secrets += [str(v) for v in (entry.get("headers") or {}).values()]
    secrets += [str(a) for a in [*(argv or entry.get("argv") or []), *(entry.get("undo") or [])]]
    for secret in sorted({s for s in secrets if len(s) > 1}, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


def check_actions(actions: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the key for a malformed ``[robot.actions]``."""
    for backend, events in actions.items():
        where = f"robot.actions.{backend}"
        if not isinstance(events, dict):
            raise ConfigError(f"{where}: must be a table")
        for event, entries in events.items():
            if event not in EVENTS:
                raise ConfigError(f"{where}: unknown event '{event}' (one of: {', '.join(EVENTS)})")
            if not isinstance(entries, list):
                raise ConfigError(f"{where}.{event}: must be a list of actions")
            for i, entry in enumerate(entries):
                _check_entry(entry, f"{where}.{event}[{i}]")


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict) or entry.get("type") not in TYPES:
        raise ConfigError(f"{where}: needs type = one of {', '.join(TYPES)}")
    extra = set(entry) - TYPES[entry["type"]] - {"type"}
    if extra:
        raise ConfigError(f"{where}: unknown key '{sorted(extra)[0]}'")
    if entry["type"] == "command":
        argv = entry.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ConfigError(f"{where}.argv: must be a non-empty list of strings")
        undo = entry.get("undo", ["-"])
        if not isinstance(undo, list) or not undo or not all(isinstance(a, str) for a in undo):
            raise ConfigError(f"{where}.undo: must be a non-empty list of strings")
    if entry["type"] == "webhook" and not str(entry.get("url", "")).startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url: must be an http:// or https:// URL")


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
                     attempts=0, last_error="", next_attempt_at=utcnow())
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


def _entry(config: Mapping[str, Any], row: Delivery) -> Mapping[str, Any] | None:
    """The configured action a delivery stands for, unless hc.toml changed it since."""
    backend, kind, index = row.config_key.rsplit(".", 2)
    for i, entry in _entries(config, None if backend == "default" else backend, kind):
        if i == int(index) and fingerprint(entry) == row.fingerprint:
            return entry
    return None


def deliver(limit: int = 50) -> dict[str, int]:
    """The actions tick: run due deliveries, each outside any transaction.

    A row is claimed with a compare-and-set on ``next_attempt_at`` (pushed
    past the action's timeout), so a second deliverer never runs it twice.
    A failure is retried with exponential backoff until ``action_retries``
    retries are spent; then the row is ``failed`` and a ``robot`` alert stays
    open until that action works again.
    """
    config = current_app.config["ROBOT"]
    now = utcnow()
    due = db.session.execute(select(Delivery.id, Delivery.next_attempt_at).where(
        Delivery.state == "pending", Delivery.next_attempt_at <= now).order_by(Delivery.id).limit(limit)).all()
    db.session.commit()
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    for row_id, due_at in due:
        outcome = _deliver_one(config, row_id, due_at)
        if outcome:
            counts[outcome] += 1
    return counts


def _claim(config: Mapping[str, Any], row_id: int, due_at: datetime) -> bool:
    hold = utcnow() + timedelta(seconds=2 * float(config.get("action_timeout", 10.0)) + 5)
    done = db.session.execute(update(Delivery).where(
        Delivery.id == row_id, Delivery.state == "pending", Delivery.next_attempt_at == due_at,
    ).values(next_attempt_at=hold))
    db.session.commit()
    return bool(done.rowcount)  # type: ignore[attr-defined]


def _deliver_one(config: Mapping[str, Any], row_id: int, due_at: datetime) -> str:
    if not _claim(config, row_id, due_at):
        return ""
    row = db.session.get_one(Delivery, row_id)
    entry, data = _entry(config, row), {**row.data, "id": row.event_id}
    db.session.commit()  # nothing open while the action runs
    if entry is None:
        ok, message = False, f"action {row.config_key} is no longer configured as it was; not run"
    else:
        try:
            ok, message = _run_one(config, entry, data)
        except Exception as exc:  # noqa: BLE001 - an action must never stop the deliverer
            ok, message = False, f"{type(exc).__name__}: {exc}"
        message = scrub(message, entry)
    return _record(config, db.session.get_one(Delivery, row_id), entry, ok, message)


def _record(config: Mapping[str, Any], row: Delivery, entry: Mapping[str, Any] | None, ok: bool,
            message: str) -> str:
    event = db.session.get_one(RobotEvent, row.event_id)
    row.attempts += 1
    now = utcnow()
    retries = int((entry or {}).get("retries", config.get("action_retries", 8)))
    if ok:
        row.state, row.delivered_at, row.last_error = "delivered", now, ""
        outcome = "delivered"
    elif entry is not None and row.attempts <= retries:
        backoff = float(config.get("action_backoff_seconds", 5.0)) * 2 ** (row.attempts - 1)
        row.next_attempt_at, row.last_error = now + timedelta(seconds=min(backoff, 3600.0)), message[:2000]
        outcome = "retry"
    else:
        row.state, row.last_error = "failed", message[:2000]
        outcome = "failed"
    if not ok:
        log.warning("robot action %s for event %s failed (attempt %d): %s", row.action, event.id, row.attempts,
                    message)
    if outcome != "retry":
        db.session.add(RobotEvent(kind="action", queue=event.queue, backend=event.backend, rule=row.action,
                                  parent_id=event.id, alert_id=event.alert_id, ok=ok,
                                  message=f"{message[:1900]} (attempt {row.attempts})"))
    _action_alert(row, event, ok or outcome == "retry", message)
    db.session.commit()
    return outcome


def _action_alert(row: Delivery, event: RobotEvent, ok: bool, message: str) -> None:
    """An action that failed for good keeps a ``robot`` alert open until that action works again.

    Its own open/close events are logged but run no actions (no loops).
    """
    from hcflask.engine.alerts import close_alert, find_open, raise_alert

    key = f"action:{row.config_key}"
    if not ok:
        raise_alert("robot", key, f"{row.action} action failing for {event.backend or 'alerts'}",
                    f"{event.kind} {event.queue or ''}: {message[:500]}", backend=event.backend)
    elif (alert := find_open(key)) is not None:
        close_alert(alert, "the action works again")


def _fill(text: str, data: Mapping[str, Any]) -> str:
    values = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in data.items()}
    return text.format_map(values)


def _run_one(config: Mapping[str, Any], entry: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[bool, str]:
    timeout = float(entry.get("timeout", config.get("action_timeout", 10.0)))
    if entry["type"] == "record":
        return True, "recorded"
    if entry["type"] == "command":
        argv = [_fill(a, data) for a in entry["argv"]]
        try:
            done = run(argv, timeout=timeout)
        except BackendUnavailable as exc:
            return False, scrub(f"{shown(entry)}: {exc}", entry, argv)
        detail = scrub((done.stderr or done.stdout).strip()[-500:], entry, argv)
        return done.returncode == 0, f"exit {done.returncode}: {shown(entry)}" + (f": {detail}" if detail else "")
    return _post(entry, data, timeout)


def _post(entry: Mapping[str, Any], data: Mapping[str, Any], timeout: float) -> tuple[bool, str]:
    """One POST; retries are the outbox's business.  The message names the host only."""
    url = str(entry["url"])
    host = shown(entry)
    headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
    try:
        response = requests.post(url, json=dict(data), timeout=timeout, headers=headers)
    except requests.Timeout:
        return False, f"POST to {host}: no answer within {timeout:g} s"
    except requests.RequestException as exc:
        return False, f"POST to {host}: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return True, f"POST to {host}: {response.status_code}"
    return False, f"POST to {host}: HTTP {response.status_code}: {response.text[:200]}"

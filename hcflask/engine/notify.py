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

Actions run *after* the event is committed, each caught on its own: a
failing action becomes a logged ``action`` row (``ok`` false, with the
error) next to its event, and never stops the robot or loses the event.
Timeouts bound how long one action can hold the core tick.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import requests

from hcflask.backends import BackendUnavailable
from hcflask.backends.runner import run
from hcflask.config import ConfigError
from hcflask.extensions import db
from hcflask.models import RobotEvent, iso

log = logging.getLogger("hcflask.robot")
EVENTS = ("exclude", "recover", "alert")
TYPES = {"record": set(), "command": {"argv", "undo", "timeout"}, "webhook": {"url", "timeout", "retries", "headers"}}


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


def undo_actions(config: Mapping[str, Any], backend: str | None) -> list[dict[str, Any]]:
    """A rollback's actions: the ``undo`` of each exclude command that has one."""
    return [{**entry, "argv": entry["undo"]} for entry in actions_for(config, backend, "exclude")
            if entry["type"] == "command" and entry.get("undo")]


def dispatch(config: Mapping[str, Any], event: RobotEvent, data: Mapping[str, Any]) -> list[RobotEvent]:
    """Run the actions configured for ``event`` and log each outcome (committed)."""
    kind = "alert" if event.kind.startswith("alert") else event.kind
    entries = undo_actions(config, event.backend) if kind == "rollback" else actions_for(config, event.backend, kind)
    rows = []
    for entry in entries:
        try:
            ok, message = _run_one(config, entry, data)
        except Exception as exc:  # noqa: BLE001 - an action must never stop the robot
            ok, message = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.warning("robot action %s for event %s failed: %s", entry.get("type"), event.id, message)
        row = RobotEvent(kind="action", queue=event.queue, backend=event.backend, rule=entry.get("type"),
                         parent_id=event.id, alert_id=event.alert_id, ok=ok, message=message[:2000])
        db.session.add(row)
        _action_alert(entry, event, ok, message)
        db.session.commit()
        rows.append(row)
    return rows


def _action_alert(entry: Mapping[str, Any], event: RobotEvent, ok: bool, message: str) -> None:
    """A failing action keeps a ``robot`` alert open until that action works again.

    Its own open/close events are logged but run no actions (no loops).
    """
    from hcflask.engine.alerts import close_alert, find_open, raise_alert

    target = entry.get("url") or (entry.get("argv") or [""])[0]
    key = f"action:{event.backend or 'default'}:{entry.get('type')}:{target}"
    if not ok:
        raise_alert("robot", key, f"{entry.get('type')} action failing for {event.backend or 'alerts'}",
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
            return False, f"{argv[0]}: {exc}"
        detail = (done.stderr or done.stdout).strip()[-500:]
        return done.returncode == 0, f"exit {done.returncode}: {' '.join(argv)}" + (f": {detail}" if detail else "")
    return _post(entry, data, timeout, int(entry.get("retries", config.get("action_retries", 2))))


def _post(entry: Mapping[str, Any], data: Mapping[str, Any], timeout: float, retries: int) -> tuple[bool, str]:
    url = str(entry["url"])
    headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
    error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.2 * 2 ** attempt, 2.0))
        try:
            response = requests.post(url, json=dict(data), timeout=timeout, headers=headers)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
            continue
        if 200 <= response.status_code < 300:
            return True, f"POST {url}: {response.status_code} (attempt {attempt + 1})"
        error = f"HTTP {response.status_code}: {response.text[:200]}"
    return False, f"POST {url} failed after {retries + 1} attempts: {error}"

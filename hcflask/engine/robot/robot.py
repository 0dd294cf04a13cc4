"""The robot pass: exclude broken queues, recover healthy ones, raise alerts.

Run from the core tick.  What counts (docs/design.md "The robot"):

* only jobs that *finished* -- ``succeeded`` or ``failed`` -- and were
  judged by the pass time.  ``cancelled`` and ``lost`` say nothing about
  the queue;
* only jobs of tests whose snapshot has ``autoexclusion`` (and whose
  template is not switched off in ``[robot.templates.<name>]``);
* only jobs that ended within the window (``window_hours``), newest first,
  per queue × template.  After a manual release or a recovery less than
  ``flap_hours`` ago, and after a central outage, only jobs that ended
  after that moment count (the same evidence never excludes twice).

A pass is three steps: :func:`load` reads a :class:`~hcflask.engine.robot.decide.Snapshot`,
:func:`~hcflask.engine.robot.decide.decide` (pure) says what to do, and
:func:`write` does it -- every claim through :mod:`hcflask.engine.status`
(compare-and-set on the version the snapshot saw), each with its
:class:`RobotEvent` and the outbox rows of its actions; then alerts and the
summary, committed together with their actions (:func:`notify_events`), so no
crash can leave an alert whose actions were never queued.  The replay runs the first two steps
over the stored history.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from hcflask.engine import notify, status
from hcflask.engine.common import log
from hcflask.engine.robot import snapshot
from hcflask.engine.robot.alerts import close_alert, find_open, open_alerts, raise_alert
from hcflask.engine.robot.decide import Decisions, Move, Snapshot, decide
from hcflask.engine.robot.rules import Settings
from hcflask.engine.service.clock import db_now
from hcflask.extensions import db
from hcflask.models import Alert, BackendHealth, RobotEvent, RobotState, utcnow

OUTAGE_KEY = "outage"
Pending = list[tuple[RobotEvent, dict[str, Any]]]


def set_enabled(enabled: bool, actor: str, reason: str = "") -> RobotEvent | None:
    """The global switch; the flip itself is logged (None if unchanged, but a new reason is kept)."""
    state = RobotState.get()
    if state.enabled == enabled:
        if reason and reason != state.reason:
            state.reason, state.changed_by = reason, actor
        db.session.commit()
        return None
    state.enabled, state.changed_by, state.changed_at, state.reason = enabled, actor, utcnow(), reason
    word = "on" if enabled else "off"
    event = RobotEvent(kind="switch", actor=actor, rule=word,
                       message=f"auto-exclusion switched {word}" + (f": {reason}" if reason else ""))
    db.session.add(event)
    db.session.commit()
    return event


def keep_of(settings: Settings) -> int:
    """How many outcomes per queue × test a pass needs."""
    return settings.max_of("exclude_last", "pair_first", "spread_last", "recover_last")


def perf_blocked(settings: Settings, alerts: list[Alert]) -> set[str]:
    """Queues whose open performance alert blocks recovery (where ``performance_excludes`` is set)."""
    return {a.queue for a in alerts
            if a.queue and settings.get(a.queue, a.key.split(":")[2])["performance_excludes"]}


def failing_since(summary: Mapping[str, Any]) -> dict[str, datetime]:
    """When each queue started failing, as the previous pass recorded it."""
    return {name: datetime.fromisoformat(row["failing_since"]) for name, row in summary.items()
            if isinstance(row, dict) and row.get("failing_since")}


def load(now: datetime, settings: Settings, state: RobotState) -> Snapshot:
    """The live snapshot: what the database says now."""
    since = snapshot.since_for(now, settings)
    tests = snapshot.driving_tests(settings, since, now)
    closed = db.session.scalar(select(func.max(Alert.closed_at)).where(
        Alert.key == OUTAGE_KEY, Alert.closed_at >= since))
    down = set(db.session.scalars(select(BackendHealth.backend).where(BackendHealth.available.is_(False))))
    return Snapshot(
        now=now, queues=snapshot.queue_views(now, live=True),
        outcomes=snapshot.gather(tests, since, keep_of(settings), now),
        expected=snapshot.expected_templates(tests.values(), now), down=down, enabled=state.enabled,
        outage_open=find_open(OUTAGE_KEY) is not None, outage_closed=closed,
        perf_blocked=perf_blocked(settings, open_alerts("performance")),
        failing_since=failing_since(state.last_summary or {}))


def _backend_alerts(now: datetime) -> Pending:
    down = {h.backend: h for h in db.session.scalars(select(BackendHealth).where(BackendHealth.available.is_(False)))}
    events: Pending = []
    for name, health in down.items():
        _, event = raise_alert("backend", f"backend:{name}", f"backend {name} unreachable",
                               health.error or "no answer", backend=name, now=now)
        if event:
            events.append((event, {}))
    for alert in open_alerts("backend"):
        if alert.backend not in down:
            events.append((close_alert(alert, f"backend {alert.backend} answers again", now), {}))
    return events


def _move(move: Move, kind: str, now: datetime) -> tuple[status.Written, RobotEvent]:
    queue = move.queue
    event = RobotEvent(kind=kind, queue=queue.name, backend=queue.backend, rule=move.rule, message=move.reason,
                       job_ids=list(move.job_ids), time=now)
    if kind == "exclude":
        written = status.exclude(queue.id, "robot", "robot", move.reason, move.rule, move.job_ids, move.failure,
                                 expected=queue.version, seen_at=queue.changed_at, records=[event], now=now,
                                 then=with_actions(event))
    else:
        written = status.release(queue.id, "robot", "robot", move.reason, kind, move.job_ids,
                                 expected=queue.version, records=[event], now=now, then=with_actions(event))
    return written, event


def write(decisions: Decisions, now: datetime, started: float) -> Pending:
    """Carry out the decisions; each status change is its own compare-and-set transaction."""
    events: Pending = []
    counts = decisions.counts
    steps = (("rollback", decisions.rollback, "rolled_back"), ("exclude", decisions.exclude, "excluded"),
             ("recover", decisions.recover, "recovered"))
    for kind, moves, counter in steps:
        for move in moves:
            written, event = _move(move, kind, now)
            if written.done:
                counts[counter] += 1
                log.info("robot: %s %s (%s)", kind, move.queue.name, move.reason)
            else:
                decisions.summary[move.queue.name]["held"] = f"not written: {written.why}"
    events += _backend_alerts(now)
    alert = find_open(OUTAGE_KEY)
    if decisions.outage == "raise":
        alert, opened = raise_alert("outage", OUTAGE_KEY, "central outage suspected", decisions.outage_message,
                                    now=now)
        if opened:
            events.append((opened, {"title": alert.title, "kind": "outage"}))
    elif decisions.outage == "close" and alert is not None:
        events.append((close_alert(alert, decisions.outage_message, now), {}))
    state = RobotState.get()
    state.last_summary = decisions.summary
    state.last_run_at = now
    state.last_run_seconds = time.monotonic() - started
    notify_events(events)
    db.session.commit()
    return events


def with_actions(event: RobotEvent) -> Callable[[str, str], list[Any]]:
    """The outbox rows of a status change's event, made with the status it really moved from and
    to, for :mod:`~hcflask.engine.status` to add in the change's own transaction."""
    return lambda old, new: list(notify.outbox(event, notify.event_data(event, old_status=old, new_status=new)))


def notify_events(events: Pending) -> None:
    """Put the actions of the pass's alert events into the outbox (:func:`notify.enqueue`), in the
    transaction that commits the alerts; the actions tick delivers them later."""
    for event, extra in events:
        notify.enqueue(event, notify.event_data(event, **extra))


def robot_pass(now: datetime | None = None) -> dict[str, int]:
    """One pass over every queue; returns counts (excluded, recovered, rolled_back, held, ...)."""
    started = time.monotonic()
    now = now or db_now()
    settings = Settings(current_app.config["ROBOT"])
    state = RobotState.get()
    decisions = decide(load(now, settings, state), settings)
    write(decisions, now, started)
    counts = decisions.counts
    if counts["excluded"] or counts["recovered"] or counts["rolled_back"]:
        log.info("robot: %s", counts)
    return counts

"""The robot pass: exclude broken queues, recover healthy ones, raise alerts.

Run from the core tick.  What counts (docs/design.md "The robot"):

* only jobs that *finished* -- ``succeeded`` or ``failed``.  ``cancelled``
  (a test ended or an admin stopped it) and ``lost`` (hcflask itself
  stopped between writing and submitting) say nothing about the queue;
* only jobs of tests whose snapshot has ``autoexclusion`` (and whose
  template is not switched off in ``[robot.templates.<name>]``);
* only jobs that ended within the window (``window_hours``), newest first,
  per queue × template.  For a queue that came back online less than
  ``flap_hours`` ago, and after a central outage, only jobs that ended after
  that moment count towards exclusion (anti-flapping: the same evidence
  never excludes twice).

Queues on a backend that is down are not judged at all (a backend alert is
raised instead); ``offline`` (an admin's) and ``test`` queues are never
touched; only ``excluded`` queues are recovered.  When more queues would be
excluded in one pass than the outage guard allows, none is, and one alert
names the most common failure.  Every change goes through
``Queue.set_status(..., actor="robot", rule=..., job_ids=...)`` and a
:class:`RobotEvent`; configured actions run after the commit.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select

from hcflask.engine import notify
from hcflask.engine.alerts import close_alert, find_open, open_alerts, raise_alert
from hcflask.engine.common import log
from hcflask.engine.rules import Outcome, Series, Settings, Verdict, judge_queue
from hcflask.extensions import db
from hcflask.models import Alert, BackendHealth, Job, Queue, RobotEvent, RobotState, Test, utcnow
from hcflask.states import JobState, QueueStatus, TestState

COUNTED = (JobState.SUCCEEDED.value, JobState.FAILED.value)
OUTAGE_KEY = "outage"


def set_enabled(enabled: bool, actor: str, reason: str = "") -> RobotEvent | None:
    """The global switch; the flip itself is logged (None if unchanged)."""
    state = RobotState.get()
    if state.enabled == enabled:
        db.session.commit()
        return None
    state.enabled, state.changed_by, state.changed_at, state.reason = enabled, actor, utcnow(), reason
    word = "on" if enabled else "off"
    event = RobotEvent(kind="switch", actor=actor, rule=word,
                       message=f"auto-exclusion switched {word}" + (f": {reason}" if reason else ""))
    db.session.add(event)
    db.session.commit()
    return event


def driving_tests(settings: Settings, since: datetime) -> dict[int, Test]:
    """Tests whose jobs may count: snapshot says autoexclusion, not switched off in hc.toml."""
    tests = db.session.scalars(select(Test).where(or_(Test.finished_at.is_(None), Test.finished_at >= since)))
    return {t.id: t for t in tests
            if t.snapshot.get("autoexclusion") and settings.get(template=t.template_name)["autoexclusion"]}


def gather(tests: Mapping[int, Test], since: datetime, keep: int,
           queue_ids: list[int]) -> dict[int, dict[str, list[Outcome]]]:
    """queue id → template → the newest ``keep`` outcomes per test, merged newest first.

    One small indexed query per queue × test (``LIMIT keep`` on the queue's
    jobs by end time) beats a window function over the whole window.
    """
    out: dict[int, dict[str, list[Outcome]]] = defaultdict(lambda: defaultdict(list))
    for queue_id in queue_ids:
        for test_id, test in tests.items():
            rows = db.session.execute(
                select(Job.id, Job.state, Job.ended_at, Job.failure_reason).where(
                    Job.queue_id == queue_id, Job.test_id == test_id, Job.state.in_(COUNTED), Job.ended_at >= since,
                ).order_by(Job.ended_at.desc(), Job.id.desc()).limit(keep))
            for job_id, state, ended_at, reason in rows:
                if ended_at is None:
                    continue
                out[queue_id][test.template_name].append(
                    Outcome(job_id, state == JobState.SUCCEEDED.value, ended_at, reason or ""))
    for per_template in out.values():
        for outcomes in per_template.values():
            outcomes.sort(key=lambda o: (o.ended_at, o.job_id), reverse=True)
    return out


def build_series(queue: Queue, outcomes: Mapping[str, list[Outcome]], expected: set[str], settings: Settings,
                 now: datetime, cutoff: datetime | None) -> list[Series]:
    """One series per driving template of ``queue``, within its window and after ``cutoff``."""
    series = []
    for template in sorted(expected | set(outcomes)):
        params = settings.get(queue.name, template)
        since = now - timedelta(hours=float(params["window_hours"]))
        if cutoff is not None and cutoff > since:
            since = cutoff
        kept = [o for o in outcomes.get(template, []) if o.ended_at >= since]
        series.append(Series(template, kept, params))
    return series


def _cutoff(queue: Queue, settings: Settings, now: datetime, outage_closed: datetime | None) -> datetime | None:
    """Evidence older than this does not exclude ``queue`` (anti-flapping, outage)."""
    cut = outage_closed
    flap = timedelta(hours=float(settings.get(queue.name)["flap_hours"]))
    if queue.status == QueueStatus.ONLINE.value and queue.status_changed_at and now - queue.status_changed_at < flap:
        cut = max(cut, queue.status_changed_at) if cut else queue.status_changed_at
    return cut


def _outage_closed(now: datetime, hours: float) -> datetime | None:
    return db.session.scalar(select(func.max(Alert.closed_at)).where(
        Alert.key == OUTAGE_KEY, Alert.closed_at >= now - timedelta(hours=hours)))


def _backend_alerts(down: Mapping[str, BackendHealth]) -> list[RobotEvent]:
    events = []
    for name, health in down.items():
        _, event = raise_alert("backend", f"backend:{name}", f"backend {name} unreachable",
                               health.error or "no answer", backend=name)
        if event:
            events.append(event)
    for alert in open_alerts("backend"):
        if alert.backend not in down:
            events.append(close_alert(alert, f"backend {alert.backend} answers again"))
    return events


def _outage(failing: list[tuple[Queue, Verdict, list[Series]]], active: int, cfg: Mapping[str, Any]) -> bool:
    return len(failing) >= int(cfg["outage_min_queues"]) and len(failing) > float(cfg["outage_share"]) * active


def _outage_message(failing: list[tuple[Queue, Verdict, list[Series]]], active: int) -> str:
    reasons: Counter[str] = Counter()
    first: datetime | None = None
    for _queue, verdict, series in failing:
        for s in series:
            for o in s.outcomes:
                if o.job_id in verdict.job_ids:
                    reasons[o.reason or "no reason recorded"] += 1
                    first = o.ended_at if first is None else min(first, o.ended_at)
    common = reasons.most_common(1)[0][0] if reasons else "unknown"
    since = f" since {first:%H:%M} UTC" if first else ""
    return f"central outage suspected: {len(failing)} of {active} queues failing{since}; most common failure: {common}"


def robot_pass(now: datetime | None = None) -> dict[str, int]:
    """One pass over every queue; returns counts (excluded, recovered, ...)."""
    clock = time.monotonic()
    now = now or utcnow()
    robot_cfg = current_app.config["ROBOT"]
    settings = Settings(robot_cfg)
    cfg = settings.get()
    state = RobotState.get()
    down = {h.backend: h for h in db.session.scalars(select(BackendHealth).where(BackendHealth.available.is_(False)))}
    events: list[tuple[RobotEvent, dict[str, Any]]] = [(e, {}) for e in _backend_alerts(down)]
    queues = list(db.session.scalars(Queue.live().order_by(Queue.name)))
    hours = max([float(cfg["window_hours"])] + [float(settings.get(q.name, t)["window_hours"])
                for q in queues for t in settings.templates])
    tests = driving_tests(settings, now - timedelta(hours=hours))
    expected: dict[str, set[str]] = defaultdict(set)
    for test in tests.values():
        if test.state == TestState.RUNNING.value:
            for name in test.queue_names:
                expected[name].add(test.template_name)
    keep = settings.max_of("exclude_last", "pair_first", "spread_last", "recover_last")
    outcomes = gather(tests, now - timedelta(hours=hours), keep, [q.id for q in queues]) if tests else {}
    outage_closed = _outage_closed(now, hours)
    perf_blocked = {a.queue for a in open_alerts("performance")
                    if a.queue and settings.get(a.queue, a.key.split(":")[2])["performance_excludes"]}
    summary: dict[str, Any] = {}
    failing: list[tuple[Queue, Verdict, list[Series]]] = []
    recover: list[tuple[Queue, Verdict]] = []
    active = 0
    for queue in queues:
        row: dict[str, Any] = {"status": queue.status, "backend": queue.backend}
        summary[queue.name] = row
        if queue.backend in down:
            row.update(verdict="not_judged", reason=f"backend {queue.backend} is unreachable")
            continue
        if queue.status not in (QueueStatus.ONLINE.value, QueueStatus.EXCLUDED.value):
            row.update(verdict="not_judged", reason=f"status {queue.status}: the robot leaves it alone")
            continue
        active += 1
        cutoff = _cutoff(queue, settings, now, outage_closed)
        series = build_series(queue, outcomes.get(queue.id, {}), expected.get(queue.name, set()), settings, now,
                              cutoff)
        verdict = judge_queue(series, settings.get(queue.name))
        row.update(verdict=verdict.kind, rule=verdict.rule, reason=verdict.reason, job_ids=list(verdict.job_ids),
                   templates={s.template: "".join("S" if o.ok else "F" for o in s.outcomes[:10]) for s in series})
        if queue.status == QueueStatus.ONLINE.value and verdict.kind == "exclude":
            failing.append((queue, verdict, series))
        elif queue.status == QueueStatus.EXCLUDED.value and verdict.kind == "healthy":
            recover.append((queue, verdict))
    counts = {"excluded": 0, "recovered": 0, "failing": len(failing), "outage": 0}
    alert = find_open(OUTAGE_KEY)
    if _outage(failing, active, cfg):
        counts["outage"] = 1
        message = _outage_message(failing, active)
        alert, event = raise_alert("outage", OUTAGE_KEY, "central outage suspected", message)
        if event:
            events.append((event, {"title": alert.title, "kind": "outage"}))
        for queue, _verdict, _series in failing:
            summary[queue.name]["held"] = "outage guard: not excluded"
    else:
        if alert is not None:
            events.append((close_alert(alert, f"failures stopped ({len(failing)} of {active} queues failing)"), {}))
        for queue, verdict, _series in failing:
            why = _why_not(queue, state, settings)
            if why:
                summary[queue.name]["held"] = why
                continue
            events.append(change_status(queue, QueueStatus.EXCLUDED, verdict, "exclude"))
            counts["excluded"] += 1
    for queue, verdict in recover:
        why = _why_not(queue, state, settings) or ("open performance alert" if queue.name in perf_blocked else "")
        if why:
            summary[queue.name]["held"] = why
            continue
        events.append(change_status(queue, QueueStatus.ONLINE, verdict, "recover"))
        counts["recovered"] += 1
    state.last_summary = summary
    state.last_run_at = now
    state.last_run_seconds = time.monotonic() - clock
    db.session.commit()
    for event, extra in events:
        notify.dispatch(robot_cfg, event, notify.event_data(event, **extra))
    if counts["excluded"] or counts["recovered"]:
        log.info("robot: %s", counts)
    return counts


def _why_not(queue: Queue, state: RobotState, settings: Settings) -> str:
    if not state.enabled:
        return "auto-exclusion is switched off"
    if not settings.base["enabled"]:
        return "auto-exclusion is off in hc.toml ([robot] enabled = false)"
    if not queue.autoexclusion or not settings.get(queue.name)["autoexclusion"]:
        return "queue opted out of auto-exclusion"
    return ""


def change_status(queue: Queue, new: QueueStatus, verdict: Verdict, kind: str) -> tuple[RobotEvent, dict[str, Any]]:
    """The robot's status change with its evidence, and the log event its actions will get."""
    old = queue.status
    queue.set_status(new, actor="robot", reason=verdict.reason, rule=verdict.rule, job_ids=verdict.job_ids)
    event = RobotEvent(kind=kind, queue=queue.name, backend=queue.backend, rule=verdict.rule,
                       message=verdict.reason, job_ids=list(verdict.job_ids))
    db.session.add(event)
    log.info("robot: %s %s (%s)", kind, queue.name, verdict.reason)
    return event, {"old_status": old, "new_status": new.value}

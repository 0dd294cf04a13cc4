"""The robot's decision step: a snapshot in, decisions out, nothing written.

The live pass (:mod:`hcflask.engine.robot.robot`) builds the :class:`Snapshot`
from the database and hands the :class:`Decisions` to its writer; the
replay (:mod:`hcflask.engine.robot.replay`) builds snapshots from the stored
history and applies the decisions to simulated claims.  Both run this same
function, so a replay shows what the live robot would have done.

The outage guard (docs/robot.md "The outage guard") is a *standing budget*,
counted per failure signature (:mod:`hcflask.signatures`), in this order:

* *standing*: every queue the robot holds out now, whatever the age of its
  claim, plus every judged queue the rules would exclude now;
* *judged* (the denominator): the queues a driving test covers that were
  judged in this pass (enough jobs for a verdict), plus those held out;
* *outage*: one signature's standing queues are at least ``outage_min_queues``
  and more than ``outage_share`` of the judged: no exclusion, one ``outage``
  alert, and with ``outage_rollback`` every robot claim with that signature
  is rolled back (their actions' undo runs), however old;
* *several faces*: all standing queues together pass the same limits:
  the alert, and no new exclusion, but no rollback of unrelated claims;
* *suspicion hold*: no outage, but ``outage_min_queues`` or more share one
  signature: new exclusions for it wait until the queue has failed for one
  guard window without the count passing the share;
* *after an outage*: the pass that closes the alert, and one guard window
  after it, excludes nothing; jobs that ended before the close never count.

The switch and ``[robot] enabled = false`` stop every move, rollbacks
included: the alert is still raised and says what would have been rolled back.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from hcflask.engine.robot.rules import Outcome, Series, Settings, Verdict, judge_queue
from hcflask.signatures import signature
from hcflask.times import shown


@dataclasses.dataclass(frozen=True, slots=True)
class RobotClaim:
    created_at: datetime
    failure: str


@dataclasses.dataclass(frozen=True, slots=True)
class QueueView:
    """One queue as the decision step sees it."""

    id: int
    name: str
    backend: str
    status: str
    version: int
    changed_at: datetime | None
    autoexclusion: bool
    admin: str | None = None
    robot: RobotClaim | None = None
    performance: bool = False
    #: the last manual release or recovery (anti-flapping starts there; a rollback is neither)
    flap_from: datetime | None = None


@dataclasses.dataclass(slots=True)
class Snapshot:
    now: datetime
    queues: list[QueueView]
    outcomes: Mapping[int, Mapping[str, list[Outcome]]]
    expected: Mapping[str, set[str]]
    down: set[str]
    enabled: bool
    outage_open: bool
    outage_closed: datetime | None
    perf_blocked: set[str]
    #: queue name -> when it started failing (from the previous pass)
    failing_since: Mapping[str, datetime]


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """One claim to add or drop, with its evidence."""

    queue: QueueView
    rule: str | None
    reason: str
    job_ids: tuple[int, ...] = ()
    failure: str = ""


@dataclasses.dataclass(slots=True)
class Decisions:
    summary: dict[str, dict[str, Any]]
    exclude: list[Move] = dataclasses.field(default_factory=list)
    recover: list[Move] = dataclasses.field(default_factory=list)
    rollback: list[Move] = dataclasses.field(default_factory=list)
    #: "raise", "close" or None, with the alert's words
    outage: str | None = None
    outage_message: str = ""
    failing_since: dict[str, datetime] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


def failure_of(verdict: Verdict, series: list[Series], queue: str) -> str:
    """The most common failure signature among the deciding jobs (computed from the reason for
    jobs judged before signatures were stored: the same function, so the same result)."""
    found: Counter[str] = Counter(
        o.signature or signature(o.reason, queue) or "no reason recorded"
        for s in series for o in s.outcomes if o.job_id in verdict.job_ids)
    return found.most_common(1)[0][0] if found else ""


def build_series(queue: QueueView, outcomes: Mapping[str, list[Outcome]], expected: set[str], settings: Settings,
                 now: datetime, cutoff: datetime | None) -> list[Series]:
    """One series per driving template of ``queue``, within its window and after ``cutoff``."""
    series = []
    for template in sorted(expected | set(outcomes)):
        params = settings.get(queue.name, template)
        since = now - timedelta(hours=float(params["window_hours"]))
        if cutoff is not None and cutoff > since:
            since = cutoff
        series.append(Series(template, [o for o in outcomes.get(template, []) if o.ended_at >= since], params))
    return series


def cutoff(queue: QueueView, settings: Settings, now: datetime, outage_closed: datetime | None) -> datetime | None:
    """Evidence older than this does not exclude ``queue`` (anti-flapping, a closed outage)."""
    cut = outage_closed
    flap = timedelta(hours=float(settings.get(queue.name)["flap_hours"]))
    if queue.robot is None and queue.flap_from and now - queue.flap_from < flap:
        cut = max(cut, queue.flap_from) if cut else queue.flap_from
    return cut


def switched_off(enabled: bool, settings: Settings) -> str:
    """Why the robot may move no queue at all (the switch, hc.toml), or ''."""
    if not enabled:
        return "auto-exclusion is switched off"
    if not settings.base["enabled"]:
        return "auto-exclusion is off in hc.toml ([robot] enabled = false)"
    return ""


def why_not(name: str, autoexclusion: bool, enabled: bool, settings: Settings) -> str:
    """Why neither the robot nor the bands may move a queue (switch, hc.toml, opt-out), or ''."""
    off = switched_off(enabled, settings)
    if off:
        return off
    if not autoexclusion or not settings.get(name)["autoexclusion"]:
        return "queue opted out of auto-exclusion"
    return ""


def is_outage(failing: int, active: int, cfg: Mapping[str, Any]) -> bool:
    return failing >= int(cfg["outage_min_queues"]) and failing > float(cfg["outage_share"]) * active


def _judge(snap: Snapshot, settings: Settings, closed: datetime | None,
           summary: dict[str, dict[str, Any]]) -> list[tuple[QueueView, Verdict, str]]:
    judged = []
    for queue in snap.queues:
        row: dict[str, Any] = {"status": queue.status, "backend": queue.backend}
        summary[queue.name] = row
        if queue.backend in snap.down:
            row.update(verdict="not_judged", reason=f"backend {queue.backend} is unreachable")
            continue
        if queue.admin is not None:
            row.update(verdict="not_judged", reason=f"status {queue.admin}: an admin's claim, the robot leaves it")
            continue
        outcomes = snap.outcomes.get(queue.id, {})
        expected = set(snap.expected.get(queue.name, set()))
        if not expected and not outcomes:
            row.update(verdict="not_judged", reason="not covered by a driving test")
            continue
        cut = cutoff(queue, settings, snap.now, closed)
        series = build_series(queue, outcomes, expected, settings, snap.now, cut)
        verdict = judge_queue(series, settings.get(queue.name))
        row.update(verdict=verdict.kind, rule=verdict.rule, reason=verdict.reason, job_ids=list(verdict.job_ids),
                   templates={s.template: "".join("S" if o.ok else "F" for o in s.outcomes[:10]) for s in series})
        if verdict.kind == "needs_jobs" and not snap.outcomes.get(queue.id):  # the label only
            row.update(verdict="not_judged", reason="no succeeded or failed job in the window "
                       "(not-applicable and cancelled jobs never count)")
        judged.append((queue, verdict, failure_of(verdict, series, queue.name) if verdict.kind == "exclude" else ""))
    return judged


def decide(snap: Snapshot, settings: Settings) -> Decisions:
    """What the robot would do now; pure (see the module docstring for the guard)."""
    cfg = settings.get()
    now = snap.now
    guard = timedelta(hours=float(cfg["guard_window_hours"]))
    out = Decisions(summary={})
    judged = _judge(snap, settings, snap.outage_closed, out.summary)
    failing = {q.name: f for q, v, f in judged if v.kind == "exclude" and q.robot is None}
    healthy = {q.name for q, v, _ in judged if v.kind == "healthy"}  # held out, but recovering now
    held_out = {q.name: q.robot.failure for q in snap.queues
                if q.robot is not None and q.admin is None and q.name not in healthy}
    standing = {**held_out, **failing}
    for name in failing:
        out.failing_since[name] = snap.failing_since.get(name, now)
    for q in snap.queues:
        if q.name in held_out and q.robot is not None:
            out.failing_since[q.name] = min(snap.failing_since.get(q.name, q.robot.created_at), q.robot.created_at)
    active = len({q.name for q, v, _ in judged if v.kind != "needs_jobs"} | set(held_out))
    groups = Counter(standing.values())
    common, _n = groups.most_common(1)[0] if groups else ("", 0)
    central = {f for f, n in groups.items() if is_outage(n, active, cfg)}
    outage = bool(central) or is_outage(len(standing), active, cfg)
    closing = snap.outage_open and not outage
    out.counts = {"excluded": 0, "recovered": 0, "failing": len(standing), "outage": int(outage), "held": 0,
                  "rolled_back": 0, "judged": active}
    if outage:
        _raise(out, snap, settings, standing, held_out, central, common, active)
    elif closing:
        out.outage = "close"
        out.outage_message = f"failures stopped ({len(standing)} of {active} judged queues failing)"
        judged = _judge(snap, settings, now, out.summary)
    last_close = now if closing else snap.outage_closed
    for queue, verdict, failure in judged:
        row = out.summary[queue.name]
        if queue.name in failing:
            row["failing_since"] = out.failing_since[queue.name].isoformat()
            row["signature"] = failure
        if verdict.kind == "exclude" and queue.robot is None:
            why = _held(queue, failure, snap, settings, outage, last_close, groups, out.failing_since, guard)
            if why:
                row["held"] = why
                out.counts["held"] += 1
            else:
                out.exclude.append(Move(queue, verdict.rule, verdict.reason, verdict.job_ids, failure))
        elif verdict.kind == "healthy" and queue.robot is not None and queue.name not in {
                m.queue.name for m in out.rollback}:
            why = why_not(queue.name, queue.autoexclusion, snap.enabled, settings) or (
                "open performance alert" if queue.name in snap.perf_blocked else "")
            if why:
                row["held"] = why
            else:
                out.recover.append(Move(queue, verdict.rule, verdict.reason, verdict.job_ids))
    return out


def _raise(out: Decisions, snap: Snapshot, settings: Settings, standing: Mapping[str, str],
           held_out: Mapping[str, str], central: set[str], common: str, active: int) -> None:
    """The outage alert's words, and the rollbacks of every robot claim with a central signature."""
    cfg = settings.get()
    started = min(out.failing_since[n] for n, f in standing.items() if f == common)
    faces = len(set(standing.values()))
    out.outage = "raise"
    out.outage_message = (f"central outage suspected: {len(standing)} of {active} judged queues failing or held out "
                          f"since {shown(started)}; most common failure: {common or 'unknown'}"
                          + (f" ({faces} different failures)" if faces > 1 else ""))
    if not cfg["outage_rollback"]:
        return
    wrong = [q for q in snap.queues if held_out.get(q.name) in central]
    off = switched_off(snap.enabled, settings)
    if off:
        for q in wrong:
            out.summary[q.name]["held"] = f"would be rolled back (outage guard), but {off}"
        if wrong:
            out.outage_message += (f"; {off}: {len(wrong)} exclusions not rolled back "
                                   f"({', '.join(q.name for q in wrong)})")
        return
    out.rollback = [Move(q, "rollback", f"outage guard: {held_out[q.name]}") for q in wrong]


def _held(queue: QueueView, failure: str, snap: Snapshot, settings: Settings, outage: bool,
          last_close: datetime | None, groups: Counter[str], since: Mapping[str, datetime], guard: timedelta) -> str:
    """Why a queue the rules would exclude is not excluded in this pass, or ''."""
    why = why_not(queue.name, queue.autoexclusion, snap.enabled, settings)
    if why:
        return why
    if outage:
        return "outage guard: not excluded"
    if last_close is not None and snap.now - last_close < guard:
        return f"held: an outage alert closed at {shown(last_close)}; exclusions wait one guard window"
    if groups[failure] >= int(settings.base["outage_min_queues"]) and snap.now - since[queue.name] < guard:
        until = since[queue.name] + guard
        return (f"suspicion hold: {groups[failure]} queues failing or held out with '{failure}'; "
                f"excluded from {shown(until)} if still failing and no outage")
    return ""

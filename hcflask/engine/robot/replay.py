"""Robot replay ("what if"): the rules over stored history, pass by pass, writing nothing.

``hc robot replay --from T1 --to T2 --step 5m --set exclude_last=4`` and
``GET /api/v1/robot/replay?from=..&to=..&step=..&set=key=value`` run the
live pass's own decision step (:func:`hcflask.engine.robot.decide.decide`) at
T1, T1+step, ... T2, each on a snapshot read as of that moment: only jobs
judged by then, tests started by then.  What the robot itself would do is
simulated -- its exclusion claims, recoveries, rollbacks and the outage
alert -- starting from how they stood at T1; what others did is taken from
the record: admin claims and manual releases, performance claims, the
switch, backend outages and performance alerts.  When an admin released a
queue after the simulated robot excluded it, the simulated claim goes too.

Known difference: the guard's "failing since" memory starts empty at T1,
so a failure already under way at T1 counts from T1.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select

from hcflask.config import ConfigError
from hcflask.engine.robot import snapshot
from hcflask.engine.robot.decide import Decisions, RobotClaim, Snapshot, decide
from hcflask.engine.robot.robot import OUTAGE_KEY, keep_of
from hcflask.engine.robot.rules import DEFAULTS, Settings, check_config
from hcflask.extensions import db
from hcflask.models import Alert, QueueClaim, RobotEvent, RobotState, ValidationError
from hcflask.signatures import of_claim
from hcflask.states import QueueStatus

MAX_PASSES = 500
MAX_RANGE = timedelta(days=31)
STEP = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclasses.dataclass(slots=True)
class Sim:
    """The robot's own state during a replay."""

    robot: dict[int, RobotClaim]
    recovered: dict[int, datetime]
    outage_open: bool
    outage_closed: datetime | None
    failing_since: dict[str, datetime] = dataclasses.field(default_factory=dict)


def parse_step(value: Any) -> timedelta:
    match = STEP.match(str(value).strip())
    if not match or int(match.group(1)) <= 0:
        raise ValidationError("step", f"expected a positive duration like 300, 90s, 5m, 1h; got {value!r}")
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` overrides of ``[robot]`` (numbers and true/false), checked like hc.toml."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = str(pair).partition("=")
        if not sep or key not in DEFAULTS:
            raise ValidationError("set", f"expected KEY=VALUE with a [robot] key ({', '.join(sorted(DEFAULTS))}); "
                                  f"got {pair!r}")
        kind = type(DEFAULTS[key])
        try:
            values[key] = _flag(raw) if kind is bool else kind(raw)
        except ValueError:
            wanted = {bool: "true or false", int: "a whole number"}.get(kind, "a number")
            raise ValidationError("set", f"{key}: expected {wanted}, got {raw!r}") from None
    try:
        check_config(values)
    except ConfigError as exc:
        raise ValidationError("set", str(exc)) from None
    return values


def _flag(raw: str) -> bool:
    """true/false as hc.toml's environment overrides read them; anything else is an error."""
    if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(raw)
    return raw.lower() in ("1", "true", "yes", "on")


def plan_times(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """T1, T1+step, ... and T2 itself: the end is a pass too, on the step or not."""
    if end <= start:
        raise ValidationError("to", "must be after from")
    if end - start > MAX_RANGE:
        raise ValidationError("to", f"at most {MAX_RANGE.days} days after from")
    steps, rest = divmod(end - start, step)
    count = steps + 1 + (1 if rest else 0)
    if count > MAX_PASSES:
        raise ValidationError("step", f"{count} passes; at most {MAX_PASSES} (use a longer step)")
    return [*(start + i * step for i in range(steps + 1)), *([end] if rest else [])]


def _active(query: Any, column_open: Any, column_closed: Any, now: datetime) -> Any:
    return query.where(column_open <= now, or_(column_closed.is_(None), column_closed > now))


def _enabled_at(now: datetime) -> bool:
    last = db.session.scalar(select(RobotEvent.rule).where(RobotEvent.kind == "switch", RobotEvent.time <= now)
                             .order_by(RobotEvent.time.desc(), RobotEvent.id.desc()).limit(1))
    if last is not None:
        return last == "on"
    later = db.session.scalar(select(RobotEvent.rule).where(RobotEvent.kind == "switch", RobotEvent.time > now)
                              .order_by(RobotEvent.time, RobotEvent.id).limit(1))
    return later == "off" if later is not None else RobotState.get().enabled


def start_state(start: datetime) -> Sim:
    """The robot's claims and outage alert just before the first pass (not what that pass did)."""
    claims = db.session.scalars(select(QueueClaim).where(
        QueueClaim.source == "robot", QueueClaim.created_at < start,
        or_(QueueClaim.released_at.is_(None), QueueClaim.released_at >= start)))
    robot = {c.queue_id: RobotClaim(c.created_at, of_claim(c.failure)) for c in claims}
    opened = db.session.scalar(select(func.count()).select_from(Alert).where(
        Alert.key == OUTAGE_KEY, Alert.opened_at < start, or_(Alert.closed_at.is_(None), Alert.closed_at >= start)))
    closed = db.session.scalar(select(func.max(Alert.closed_at)).where(Alert.key == OUTAGE_KEY,
                                                                     Alert.closed_at < start))
    return Sim(robot, {}, bool(opened), closed)


def snapshot_at(now: datetime, settings: Settings, sim: Sim) -> Snapshot:
    """The snapshot the live pass would have read at ``now``, with the simulated robot state."""
    since = snapshot.since_for(now, settings)
    tests = snapshot.driving_tests(settings, since, now)
    admin_released = snapshot.flap_from(now, ("admin",))
    views = []
    for view in snapshot.queue_views(now, live=False):
        claim = sim.robot.get(view.id)
        released = admin_released.get(view.id)
        if claim is not None and released is not None and released >= claim.created_at:
            del sim.robot[view.id]
            claim = None
        flaps = [t for t in (released, sim.recovered.get(view.id)) if t is not None]
        status = view.admin or (QueueStatus.EXCLUDED.value if claim or view.performance else QueueStatus.ONLINE.value)
        views.append(dataclasses.replace(view, robot=claim, status=status, flap_from=max(flaps) if flaps else None))
    backends = _active(select(Alert.backend).where(Alert.kind == "backend"), Alert.opened_at, Alert.closed_at, now)
    perf = list(db.session.scalars(_active(select(Alert).where(Alert.kind == "performance"), Alert.opened_at,
                                           Alert.closed_at, now)))
    from hcflask.engine.robot.robot import perf_blocked

    closed = sim.outage_closed if sim.outage_closed is not None and sim.outage_closed >= since else None
    return Snapshot(now=now, queues=views, outcomes=snapshot.gather(tests, since, keep_of(settings), now),
                    expected=snapshot.expected_templates(tests.values(), now),
                    down={b for b in db.session.scalars(backends) if b}, enabled=_enabled_at(now),
                    outage_open=sim.outage_open, outage_closed=closed, perf_blocked=perf_blocked(settings, perf),
                    failing_since=dict(sim.failing_since))


def apply(sim: Sim, decisions: Decisions, now: datetime) -> dict[str, Any]:
    """Carry the decisions out on the simulated state; what this pass did, as a report row."""
    row: dict[str, Any] = {"time": now.isoformat(timespec="seconds") + "Z"}
    for kind, moves in (("rolled_back", decisions.rollback), ("excluded", decisions.exclude),
                        ("recovered", decisions.recover)):
        row[kind] = [{"queue": m.queue.name, "rule": m.rule, "reason": m.reason, "job_ids": list(m.job_ids)}
                     for m in moves]
        for move in moves:
            if kind == "excluded":
                sim.robot[move.queue.id] = RobotClaim(now, move.failure)
            else:
                sim.robot.pop(move.queue.id, None)
                if kind == "recovered":
                    sim.recovered[move.queue.id] = now
    row["alerts"] = []
    if decisions.outage == "raise" and not sim.outage_open:
        sim.outage_open = True
        row["alerts"].append({"event": "open", "message": decisions.outage_message})
    elif decisions.outage == "close" and sim.outage_open:
        sim.outage_open, sim.outage_closed = False, now
        row["alerts"].append({"event": "close", "message": decisions.outage_message})
    row["held"] = {name: r["held"] for name, r in decisions.summary.items() if r.get("held")}
    sim.failing_since = dict(decisions.failing_since)
    return row


def replay(start: datetime, end: datetime, step: timedelta, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every pass from ``start`` to ``end``; nothing is written (the session is rolled back)."""
    result = run(plan_times(start, end, step), overrides)
    return {**result, "step_seconds": int(step.total_seconds())}


def run(times: Sequence[datetime], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Passes at ``times`` (ascending), e.g. the times the live robot ran."""
    settings = Settings({**current_app.config["ROBOT"], **overrides})
    end = times[-1]
    sim = start_state(times[0])
    passes = []
    try:
        for now in times:
            passes.append(apply(sim, decide(snapshot_at(now, settings, sim), settings), now))
    finally:
        db.session.rollback()
    totals = {k: sum(len(p[k]) for p in passes) for k in ("excluded", "recovered", "rolled_back", "alerts")}
    return {"from": times[0].isoformat() + "Z", "to": end.isoformat() + "Z", "settings": dict(overrides),
            "passes": passes, "totals": totals,
            "excluded_at_end": sorted(v.name for v in snapshot.queue_views(end, live=False) if v.id in sim.robot)}


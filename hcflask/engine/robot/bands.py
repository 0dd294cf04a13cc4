"""Performance-regression bands, as Open XDMoD's application kernels do.

Per queue × template × metric: mean ± k·σ (sample σ, k = ``band_k``) of a
baseline -- the first ``band_baseline`` finished jobs (succeeded or failed:
a failed job's measurement is still a measurement), or the window an admin
pinned.  Every later value outside the band gets ``JobMetric.flag``
``under`` or ``over``; the baseline's own points are never flagged.  When
the last ``band_run`` values are all flagged, a ``performance`` alert opens
(it excludes the queue only where ``performance_excludes`` is set for the
template or queue); it closes when a value is back in the band.  Exclusions
are ``performance`` claims through :mod:`hcflask.engine.status`, under the
robot's switches, opt-outs, backend outages and outage guard (:func:`held`),
and are released when the alert closes.

Only metrics newer than the watermark in :class:`RobotState` are looked at
in a pass, so the cost follows the number of new jobs, not the history.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select, tuple_, update

from hcflask.engine import notify, status
from hcflask.engine.common import log
from hcflask.engine.robot.alerts import close_alert, find_open, raise_alert
from hcflask.engine.robot.robot import with_actions
from hcflask.engine.robot.rules import Settings
from hcflask.extensions import db
from hcflask.models import (
    BackendHealth,
    Job,
    JobMetric,
    MetricBand,
    Queue,
    QueueClaim,
    RobotEvent,
    RobotState,
    Test,
    utcnow,
)
from hcflask.states import JobState

COUNTED = (JobState.SUCCEEDED.value, JobState.FAILED.value)


def band_of(values: Sequence[float]) -> tuple[float, float] | None:
    """(mean, σ) of ``values``; None with fewer than two."""
    if len(values) < 2:
        return None
    return statistics.fmean(values), statistics.stdev(values)


def classify(value: float, lower: float | None, upper: float | None) -> str | None:
    if lower is not None and value < lower:
        return "under"
    if upper is not None and value > upper:
        return "over"
    return None


def alert_key(queue: str, template: str, metric: str) -> str:
    return f"performance:{queue}:{template}:{metric}"


def _tests_of(template: str) -> list[int]:
    return [i for i, snapshot in db.session.execute(select(Test.id, Test.snapshot))
            if snapshot.get("name") == template]


def _named(metric: str) -> Any:
    """``JobMetric.name == metric``, wrapped so the planner walks the queue's jobs (index on
    queue_id) rather than every metric of that name (SQLite picked the latter: 300x slower)."""
    return func.coalesce(JobMetric.name, "") == metric


def after_baseline(band: MetricBand) -> Any:
    """SQL condition: the job ended after the band's baseline."""
    return tuple_(Job.ended_at, Job.id) > tuple_(band.baseline_until, band.baseline_job_id or 0)


def in_baseline(band: MetricBand, ended: datetime, job_id: int) -> bool:
    if band.mean is None or band.baseline_until is None:
        return True
    if band.pinned_from is not None and ended < band.pinned_from:
        return True
    return (ended, job_id) <= (band.baseline_until, band.baseline_job_id or 0)


def points(band: MetricBand) -> Any:
    """(metric id, value, ended_at, job id) of the band's group, oldest first."""
    return select(JobMetric.id, JobMetric.value, Job.ended_at, Job.id.label("job_id")).join(Job).where(
        Job.queue_id == band.queue_id, _named(band.metric), Job.state.in_(COUNTED),
        Job.test_id.in_(_tests_of(band.template)), Job.ended_at.is_not(None),
    ).order_by(Job.ended_at, Job.id)


def compute(band: MetricBand, params: dict[str, Any]) -> bool:
    """(Re)compute the band from its baseline; True if it has one."""
    query = points(band)
    if band.pinned_from is not None and band.pinned_to is not None:
        rows = db.session.execute(query.where(Job.ended_at >= band.pinned_from, Job.ended_at <= band.pinned_to)).all()
    else:
        rows = db.session.execute(query.limit(int(params["band_baseline"]))).all()
        if len(rows) < int(params["band_baseline"]):
            rows = []
    stats = band_of([r.value for r in rows])
    band.k = float(params["band_k"])
    band.points = len(rows)
    band.computed_at = utcnow()
    if stats is None:
        band.mean = band.sigma = band.baseline_until = band.baseline_job_id = None
        return False
    band.mean, band.sigma = stats
    if band.pinned_to is not None:
        band.baseline_until, band.baseline_job_id = band.pinned_to, 2**62
    else:
        band.baseline_until, band.baseline_job_id = rows[-1].ended_at, rows[-1].job_id
    return True


def reflag(band: MetricBand) -> int:
    """Flag every point of the group against the band (baseline points cleared), in bulk."""
    changes = []
    flagged = 0
    for row in db.session.execute(points(band).add_columns(JobMetric.flag)):
        flag = None if in_baseline(band, row.ended_at, row.job_id) else classify(row.value, band.lower, band.upper)
        flagged += flag is not None
        if flag != row.flag:
            changes.append({"id": row.id, "flag": flag})
    if changes:
        db.session.execute(update(JobMetric), changes)
    return flagged


def _band(queue_id: int, template: str, metric: str) -> MetricBand:
    band = db.session.scalar(select(MetricBand).where(
        MetricBand.queue_id == queue_id, MetricBand.template == template, MetricBand.metric == metric))
    if band is None:
        band = MetricBand(queue_id=queue_id, template=template, metric=metric, points=0, pinned_by="")
        db.session.add(band)
    return band


def check_run(band: MetricBand, queue: Queue, params: dict[str, Any], state: RobotState) -> None:
    """Open or close the performance alert of one band from its last values.

    Each event's actions go into the outbox at once, so the next commit (the
    status owner's, before its own write, or the caller's) carries both."""
    run = int(params["band_run"])
    if band.mean is None or run <= 0:
        return
    rows = db.session.execute(
        select(JobMetric.flag, JobMetric.value, Job.id).join(Job).where(
            Job.queue_id == band.queue_id, _named(band.metric), Job.state.in_(COUNTED),
            Job.test_id.in_(_tests_of(band.template)), after_baseline(band),
        ).order_by(Job.ended_at.desc(), Job.id.desc()).limit(run)
    ).all()
    key = alert_key(queue.name, band.template, band.metric)
    if len(rows) == run and all(r.flag for r in rows):
        values = ", ".join(f"{r.value:g}" for r in reversed(rows))
        message = (f"the last {run} values of {band.metric} ({values}) are outside "
                   f"[{band.lower:.4g}, {band.upper:.4g}] (mean {band.mean:.4g} ± {band.k:g}σ)")
        alert, event = raise_alert("performance", key, f"{band.metric} of {band.template} on {queue.name} "
                                   "out of band", message, queue=queue.name, backend=queue.backend)
        if event:
            notify.enqueue(event, notify.event_data(event, title=alert.title, kind="performance"))
            if params["performance_excludes"]:
                _exclude(queue, band, message, tuple(r.id for r in rows), state)
    elif rows and not rows[0].flag:
        still_open = find_open(key)
        if still_open is not None:
            text = f"{band.metric} is back in the band ({rows[0].value:g})"
            notify.enqueue(close_alert(still_open, text))
            _release(queue, text)


def held(queue: Queue, state: RobotState, settings: Settings, now: datetime) -> str:
    """Why the bands may not exclude ``queue`` now: the robot's switches, opt-outs and guards, or ''."""
    from hcflask.engine.robot import snapshot
    from hcflask.engine.robot.decide import is_outage, why_not
    from hcflask.engine.robot.robot import OUTAGE_KEY

    why = why_not(queue.name, queue.autoexclusion, state.enabled, settings)
    if why:
        return why
    down = db.session.scalar(select(BackendHealth.host).where(  # on any host
        BackendHealth.backend == queue.backend, BackendHealth.available.is_(False)).limit(1))
    if down is not None:
        return f"backend {queue.backend} is unreachable"
    if find_open(OUTAGE_KEY) is not None:
        return "outage guard: an outage alert is open"
    # the robot's standing budget and denominator: every band exclusion held now, whatever its
    # age, against the queues a driving test covers (and no admin holds)
    standing = db.session.scalar(select(func.count(func.distinct(QueueClaim.queue_id))).where(
        QueueClaim.source == "performance", QueueClaim.released_at.is_(None))) or 0
    held_by_admin = set(db.session.scalars(select(Queue.name).join(QueueClaim, QueueClaim.queue_id == Queue.id).where(
        QueueClaim.source == "admin", QueueClaim.released_at.is_(None))))
    judged = len(snapshot.covered(settings, now) - held_by_admin)
    if is_outage(standing + 1, judged, settings.base):
        return (f"outage guard: {standing} queues held out by the bands already, of {judged} queues "
                "a driving test covers")
    return ""


def _exclude(queue: Queue, band: MetricBand, message: str, job_ids: tuple[int, ...], state: RobotState) -> None:
    """A performance exclusion claim, through the status owner and under the robot's safeguards."""
    settings = Settings(current_app.config["ROBOT"])
    now = utcnow()
    why = held(queue, state, settings, now)
    if why:
        log.info("bands: %s not excluded: %s", queue.name, why)
        return
    event = RobotEvent(kind="exclude", queue=queue.name, backend=queue.backend, rule="performance_band",
                       message=message, job_ids=list(job_ids), time=now)
    written = status.exclude(queue.id, "performance", "robot", message, "performance_band", job_ids,
                             failure=f"performance: {band.metric}", records=[event], now=now,
                             then=with_actions(event))
    if not written.done:
        log.info("bands: %s not excluded: %s", queue.name, written.why)


def _release(queue: Queue, text: str) -> None:
    """The band is back: drop its exclusion claim (the robot's or an admin's claims stay)."""
    event = RobotEvent(kind="recover", queue=queue.name, backend=queue.backend, rule="performance_band",
                       message=text)
    status.release(queue.id, "performance", "robot", text, "band", records=[event], then=with_actions(event))


def flag_pass() -> dict[str, int]:
    """Flag the metrics that arrived since the last pass; open/close alerts."""
    settings = Settings(current_app.config["ROBOT"])
    state = RobotState.get()
    every = db.session.execute(
        select(JobMetric.id, JobMetric.name, JobMetric.value, Job.id.label("job_id"), Job.queue_id, Job.test_id,
               Job.ended_at, Job.state)
        .join(Job).where(JobMetric.id > state.metric_watermark).order_by(JobMetric.id)
    ).all()
    if not every:
        return {"flagged": 0}
    rows = [r for r in every if r.state in COUNTED]
    templates = {t.id: t.template_name for t in db.session.scalars(
        select(Test).where(Test.id.in_({r.test_id for r in rows}))) if t.kind != "stress"}
    rows = [r for r in rows if r.test_id in templates]  # a stress test never drives the robot, bands included
    groups: dict[tuple[int, str, str], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.queue_id, templates[row.test_id], row.name)].append(row)
    flagged = 0
    for (queue_id, template, metric), new in groups.items():
        queue = db.session.get_one(Queue, queue_id)
        params = settings.get(queue.name, template)
        band = _band(queue_id, template, metric)
        if band.mean is None:
            if compute(band, params):
                flagged += reflag(band)
        else:
            changes = [{"id": row.id, "flag": classify(row.value, band.lower, band.upper)} for row in new
                       if row.ended_at is not None and not in_baseline(band, row.ended_at, row.job_id)]
            flagged += sum(c["flag"] is not None for c in changes)
            if changes:
                db.session.execute(update(JobMetric), changes)
        db.session.flush()
        check_run(band, queue, params, state)
    state.metric_watermark = every[-1].id
    db.session.commit()
    return {"flagged": flagged}


def pin_baseline(band: MetricBand, start: datetime | None, end: datetime | None, actor: str) -> MetricBand:
    """An admin moves the baseline (None, None: back to the first jobs); recompute and reflag."""
    band.pinned_from, band.pinned_to, band.pinned_by = start, end, actor if start else ""
    queue = db.session.get_one(Queue, band.queue_id)
    params = Settings(current_app.config["ROBOT"]).get(queue.name, band.template)
    compute(band, params)
    reflag(band)
    db.session.add(RobotEvent(kind="baseline", queue=queue.name, backend=queue.backend, actor=actor,
                              rule=band.metric, message=f"baseline of {band.metric} ({band.template}) set to "
                              f"{start or 'first jobs'} – {end or ''}: mean {band.mean}, σ {band.sigma}"))
    check_run(band, queue, params, RobotState.get())
    db.session.commit()
    return band

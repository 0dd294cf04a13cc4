"""The numbers behind the robot and overview pages (and their JSON twins).

Days are UTC calendar days.  Availability and reliability follow ARGO:
each finished test job's outcome holds until the next one, for at most the
robot window (``window_hours``); time with no valid outcome is *unknown*.
available = successful time / known time; reliability leaves out the time
an admin declared the queue ``offline`` (scheduled downtime) as well.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from hcflask.extensions import db
from hcflask.models import Job, JobMetric, MetricBand, Queue, QueueEvent, Test, utcnow
from hcflask.states import JobState, QueueStatus

FINISHED = (JobState.SUCCEEDED.value, JobState.FAILED.value)
OUTCOMES = ("succeeded", "failed", "cancelled", "lost", "in flight")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def rate_class(total: int, finished: int, succeeded: int) -> str:
    """The tile colour: no test / no finished jobs / <80% / 80–95% / >95%."""
    if not total:
        return "notest"
    if not finished:
        return "nofinished"
    rate = 100.0 * succeeded / finished
    return "bad" if rate < 80 else "warn" if rate <= 95 else "good"


def tiles(day: date) -> list[dict[str, Any]]:
    """One tile per queue for ``day``: jobs seen, finished, succeeded, colour."""
    start, end = day_bounds(day)
    seen = dict(db.session.execute(select(Job.queue_id, func.count()).where(
        Job.created_at < end, func.coalesce(Job.ended_at, end) >= start).group_by(Job.queue_id)).all())
    done: dict[int, dict[str, int]] = defaultdict(dict)
    for queue_id, state, n in db.session.execute(select(Job.queue_id, Job.state, func.count()).where(
            Job.ended_at >= start, Job.ended_at < end, Job.state.in_(FINISHED)).group_by(Job.queue_id, Job.state)):
        done[queue_id][state] = n
    out = []
    for queue in db.session.scalars(select(Queue).order_by(Queue.name)):
        ok = done[queue.id].get("succeeded", 0)
        finished = ok + done[queue.id].get("failed", 0)
        out.append({"queue": queue.name, "status": queue.status, "jobs": seen.get(queue.id, 0),
                    "finished": finished, "succeeded": ok,
                    "rate": round(100.0 * ok / finished, 1) if finished else None,
                    "class": rate_class(seen.get(queue.id, 0), finished, ok)})
    return out


def status_intervals(status: str, start: datetime, end: datetime) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per queue name: the intervals within [start, end) spent in ``status``."""
    out: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for queue in db.session.scalars(select(Queue)):
        events = list(db.session.execute(select(QueueEvent.time, QueueEvent.old_status, QueueEvent.new_status).where(
            QueueEvent.queue_id == queue.id, QueueEvent.time < end).order_by(QueueEvent.time, QueueEvent.id)))
        current = events[0].old_status if events else queue.status
        since = min(queue.created_at, start)
        for when, _old, new in events:
            if current == status and when > start:
                out[queue.name].append((max(since, start), when))
            current, since = new, when
        if current == status:
            out[queue.name].append((max(since, start), min(end, utcnow())))
    return out


def excluded_per_day(start: date, end: date) -> list[dict[str, Any]]:
    intervals = status_intervals(QueueStatus.EXCLUDED.value, *_range(start, end))
    rows = []
    for day in days(start, end):
        lo, hi = day_bounds(day)
        names = sorted(q for q, spans in intervals.items() if any(a < hi and b > lo for a, b in spans))
        rows.append({"day": day.isoformat(), "excluded": len(names), "queues": names})
    return rows


def _range(start: date, end: date) -> tuple[datetime, datetime]:
    return day_bounds(start)[0], day_bounds(end)[1]


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def jobs_per_day(start: date, end: date) -> list[dict[str, Any]]:
    """Jobs by the day they were created, split by outcome."""
    lo, hi = _range(start, end)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for day, state, n in db.session.execute(select(func.date(Job.created_at), Job.state, func.count()).where(
            Job.created_at >= lo, Job.created_at < hi).group_by(func.date(Job.created_at), Job.state)):
        key = state if state in OUTCOMES else "in flight"
        counts[_day(day)][key] += n
    return [{"day": d.isoformat(), **counts[d.isoformat()]} for d in days(start, end)]


def heatmap(start: date, end: date) -> dict[str, Any]:
    """Queue × day success rate (finished jobs by the day they ended)."""
    lo, hi = _range(start, end)
    cells: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: {"ok": 0, "n": 0}))
    rows = db.session.execute(
        select(Queue.name, func.date(Job.ended_at), Job.state, func.count()).join(Queue).where(
            Job.ended_at >= lo, Job.ended_at < hi, Job.state.in_(FINISHED),
        ).group_by(Queue.name, func.date(Job.ended_at), Job.state))
    for name, day, state, n in rows:
        counts = cells[name][_day(day)]
        counts["n"] += n
        counts["ok"] += n if state == JobState.SUCCEEDED.value else 0
    names = list(db.session.scalars(select(Queue.name).order_by(Queue.name)))
    labels = [d.isoformat() for d in days(start, end)]
    matrix = []
    for name in names:
        row = []
        for label in labels:
            cell: dict[str, int] | None = cells[name].get(label)
            rate = round(100.0 * cell["ok"] / cell["n"], 1) if cell else None
            row.append({"rate": rate, "finished": cell["n"] if cell else 0,
                        "class": rate_class(cell["n"] if cell else 0, cell["n"] if cell else 0,
                                            cell["ok"] if cell else 0)})
        matrix.append({"queue": name, "cells": row})
    return {"days": labels, "rows": matrix}


def _overlap(spans: Iterable[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    return sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in spans)


def availability(start: date, end: date) -> list[dict[str, Any]]:
    """ARGO availability and reliability per queue over [start, end]."""
    lo, hi = _range(start, end)
    hi = min(hi, utcnow())
    valid = timedelta(hours=float(current_app.config["ROBOT"].get("window_hours", 4)))
    offline = status_intervals(QueueStatus.OFFLINE.value, lo, hi)
    rows = db.session.execute(select(Job.queue_id, Job.ended_at, Job.state).where(
        Job.state.in_(FINISHED), Job.ended_at >= lo - valid, Job.ended_at < hi).order_by(Job.queue_id, Job.ended_at))
    results: dict[int, list[tuple[datetime, bool]]] = defaultdict(list)
    for queue_id, ended, state in rows:
        if ended is not None:
                results[queue_id].append((ended, state == JobState.SUCCEEDED.value))
    out = []
    for queue in db.session.scalars(select(Queue).order_by(Queue.name)):
        up: list[tuple[datetime, datetime]] = []
        known: list[tuple[datetime, datetime]] = []
        series = results.get(queue.id, [])
        for i, (ended, ok) in enumerate(series):
            until = min(ended + valid, series[i + 1][0] if i + 1 < len(series) else hi)
            known.append((ended, until))
            if ok:
                up.append((ended, until))
        up_s, known_s = _overlap(up, lo, hi), _overlap(known, lo, hi)
        down_s = sum(_overlap([(max(a, k0), min(b, k1))], lo, hi)
                     for a, b in offline.get(queue.name, []) for k0, k1 in known if a < k1 and b > k0)
        out.append({
            "queue": queue.name, "known_hours": round(known_s / 3600, 2), "up_hours": round(up_s / 3600, 2),
            "offline_hours": round(_overlap(offline.get(queue.name, []), lo, hi) / 3600, 2),
            "availability": round(100 * up_s / known_s, 1) if known_s else None,
            "reliability": round(100 * up_s / (known_s - down_s), 1) if known_s - down_s > 0 else None,
        })
    return out


def metric_series(queue: Queue | None = None, test: Test | None = None, limit: int = 2000) -> list[dict[str, Any]]:
    """Metric points over time, grouped per (queue, template, metric), with the band if any."""
    query = select(JobMetric.name, JobMetric.value, JobMetric.flag, Job.ended_at, Job.queue_id, Job.test_id,
                   JobMetric.unit).join(
        Job).where(Job.state.in_(FINISHED), Job.ended_at.is_not(None))
    if queue is not None:
        query = query.where(Job.queue_id == queue.id)
    if test is not None:
        query = query.where(Job.test_id == test.id)
    rows = db.session.execute(query.order_by(Job.ended_at.desc()).limit(limit)).all()
    templates = {t.id: t.template_name for t in db.session.scalars(
        select(Test).where(Test.id.in_({r.test_id for r in rows})))}
    names = {q.id: q.name for q in db.session.scalars(select(Queue))}
    groups: dict[tuple[int, str, str], dict[str, Any]] = {}
    for name, value, flag, ended, queue_id, test_id, unit in reversed(rows):
        if ended is None:
            continue
        key = (queue_id, templates[test_id], name)
        group = groups.setdefault(key, {"queue": names[queue_id], "template": key[1], "metric": name,
                                        "unit": unit or "", "t": [], "v": [], "flag": []})
        group["t"].append(int((ended - datetime(1970, 1, 1)).total_seconds()))
        group["v"].append(value)
        group["flag"].append(flag)
    for (queue_id, template, metric), group in groups.items():
        band = db.session.scalar(select(MetricBand).where(
            MetricBand.queue_id == queue_id, MetricBand.template == template, MetricBand.metric == metric))
        group["band"] = band.to_dict() if band and band.mean is not None else None
    return sorted(groups.values(), key=lambda g: (g["metric"], g["template"], g["queue"]))


def histograms(series: list[dict[str, Any]], bins: int = 20) -> list[dict[str, Any]]:
    """Per metric: shared bins over exactly the data's range, and one count row per queue.

    Fewer bins for few or equal values (at most one per distinct value), so no
    empty bins stand past the data.
    """
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in series:
        by_metric[group["metric"]].append(group)
    out = []
    for metric, groups in sorted(by_metric.items()):
        values = [v for g in groups for v in g["v"]]
        low, high = min(values), max(values)
        count = max(1, min(bins, len(set(values)), math.ceil(math.sqrt(len(values))) + 1))
        width = (high - low) / count or 1.0
        edges = [low + i * width for i in range(count)] if high > low else [low - 0.5]
        rows = []
        for g in groups:
            counts = [0] * count
            for v in g["v"]:
                counts[min(int((v - edges[0]) / width), count - 1)] += 1
            rows.append({"queue": g["queue"], "template": g["template"], "counts": counts})
        out.append({"metric": metric, "unit": groups[0].get("unit", ""), "edges": [round(e, 6) for e in edges],
                    "width": width, "queues": rows})
    return out

"""The numbers behind the robot and overview pages (and their JSON twins).

Days are UTC calendar days.  Every report reads the rollups
(:mod:`hcflask.models.rollup`), never the job table; only today's jobs in
flight are counted live, through the state index.  Availability and
reliability follow ARGO: each finished test job's outcome holds until the
next one of its queue × template, for at most the robot window
(``window_hours``); time with no valid outcome is *unknown*.  available =
successful time / known time; reliability leaves out the time an admin
declared the queue ``offline`` (scheduled downtime) from both.
"""
from __future__ import annotations

import math
import time as time_module
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from hcflask.extensions import db
from hcflask.models import Job, JobMetric, MetricBand, Queue, QueueEvent, Rollup, RollupTail, Test, utcnow
from hcflask.models.rollup import COUNTS, TIMES
from hcflask.states import IN_FLIGHT, JobState, QueueStatus

FINISHED = (JobState.SUCCEEDED.value, JobState.FAILED.value)
OUTCOMES = ("succeeded", "failed", "cancelled", "lost", "in flight")
#: the days a report shows unless asked (/overview, its API twins, the cost tables)
REPORT_DAYS = 30


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


Sums = dict[tuple[Any, ...], dict[str, float]]
COLUMNS = COUNTS + TIMES


def rollup_sums(lo: date, hi: date, by: tuple[str, ...], columns: tuple[str, ...] = COLUMNS) -> Sums:
    """Rollup ``columns`` summed over days [lo, hi], per ``by`` (column names).

    Days before today change only when a job is judged late, so their sums are
    kept per process for ``[reports] cache_seconds``; today's are read afresh.
    Ask for the columns you show: a month is 5,000 queue × day rows, and
    building them is most of a first page's cost.  The rows are shared with
    the cache: read them, do not change them.
    """
    today = utcnow().date()
    past = _cached_sums(lo, min(hi, today - timedelta(days=1)), by, columns) if lo < today else {}
    out: Sums = defaultdict(lambda: dict.fromkeys(columns, 0.0), past)
    if hi >= today:
        for key, values in _query_sums(max(lo, today), hi, by, columns).items():
            row = past.get(key)
            out[key] = {c: row[c] + v for c, v in values.items()} if row else values
    return out


def _query_sums(lo: date, hi: date, by: tuple[str, ...], columns: tuple[str, ...]) -> Sums:
    keys = [getattr(Rollup, name) for name in by]
    rows = db.session.execute(select(*keys, *(func.coalesce(func.sum(getattr(Rollup, c)), 0) for c in columns))
                              .where(Rollup.day >= lo, Rollup.day <= hi).group_by(*keys))
    width = len(by)
    return {tuple(row[:width]): dict(zip(columns, map(float, row[width:]), strict=True)) for row in rows}


def _cached_sums(lo: date, hi: date, by: tuple[str, ...], columns: tuple[str, ...]) -> Sums:
    cache = current_app.extensions.setdefault("hc_rollup_sums", {})
    key = (lo, hi, by, columns)
    hit = cache.get(key)
    now = time_module.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    if len(cache) > 64:
        cache.clear()
    sums = _query_sums(lo, hi, by, columns)
    cache[key] = (now + float(current_app.config["REPORTS_CACHE_SECONDS"]), sums)
    return sums


def last_days(end: date | None = None, days: int = REPORT_DAYS) -> tuple[date, date]:
    """The ``days`` days up to ``end`` (default today), both included."""
    end = end or utcnow().date()
    return end - timedelta(days=days - 1), end


def in_flight_by_queue() -> dict[int, int]:
    """Jobs not finished yet, per queue (through the state index: a few hundred rows at most)."""
    return dict(db.session.execute(select(Job.queue_id, func.count()).where(Job.state.in_(IN_FLIGHT))
                                   .group_by(Job.queue_id)).all())


def tiles(day: date) -> list[dict[str, Any]]:
    """One tile per queue for ``day``: jobs ended that day (plus today's in flight), finished, succeeded."""
    sums = rollup_sums(day, day, ("queue_id",), COUNTS[:4])
    live = in_flight_by_queue() if day == utcnow().date() else {}
    out = []
    for queue in db.session.scalars(select(Queue).order_by(Queue.name)):
        row = sums[(queue.id,)]
        ok = int(row["succeeded"])
        finished = ok + int(row["failed"])
        seen = finished + int(row["cancelled"] + row["lost"]) + live.get(queue.id, 0)
        out.append({"queue": queue.name, "status": queue.status, "jobs": seen,
                    "finished": finished, "succeeded": ok,
                    "rate": round(100.0 * ok / finished, 1) if finished else None,
                    "class": rate_class(seen, finished, ok)})
    return out


def status_intervals(status: str, start: datetime, end: datetime) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per queue name: the intervals within [start, end) spent in ``status`` (one query for all queues)."""
    events: dict[int, list[Any]] = defaultdict(list)
    for row in db.session.execute(select(QueueEvent.queue_id, QueueEvent.time, QueueEvent.old_status,
                                         QueueEvent.new_status).where(QueueEvent.time < end)
                                  .order_by(QueueEvent.queue_id, QueueEvent.time, QueueEvent.id)):
        events[row.queue_id].append(row)
    out: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for queue in db.session.scalars(select(Queue)):
        mine = events.get(queue.id, [])
        current = mine[0].old_status if mine else queue.status
        since = min(queue.created_at, start)
        for row in mine:
            if current == status and row.time > start:
                out[queue.name].append((max(since, start), row.time))
            current, since = row.new_status, row.time
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


def jobs_per_day(start: date, end: date) -> list[dict[str, Any]]:
    """Jobs by the day they ended, split by outcome; today also counts the jobs in flight."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for (day,), row in rollup_sums(start, end, ("day",), COUNTS[:4]).items():
        counts[day.isoformat()].update({o: int(row[o]) for o in OUTCOMES[:4]})
    today = utcnow().date()
    if start <= today <= end:
        counts[today.isoformat()]["in flight"] = sum(in_flight_by_queue().values())
    return [{"day": d.isoformat(), **counts[d.isoformat()]} for d in days(start, end)]


def heatmap(start: date, end: date) -> dict[str, Any]:
    """Queue × day success rate (finished jobs by the day they ended)."""
    dates = days(start, end)
    by_queue: dict[int, dict[date, dict[str, float]]] = defaultdict(dict)
    for (queue_id, day), sums in rollup_sums(start, end, ("queue_id", "day"), ("succeeded", "failed")).items():
        by_queue[queue_id][day] = sums
    labels = [d.isoformat() for d in dates]
    empty = {"rate": None, "finished": 0, "class": "notest"}
    matrix = []
    for queue_id, name in sorted(db.session.execute(select(Queue.id, Queue.name)).all(), key=lambda q: q[1]):
        mine = by_queue.get(queue_id, {})
        row = []
        for day in dates:
            cell = mine.get(day)
            ok, n = (int(cell["succeeded"]), int(cell["succeeded"] + cell["failed"])) if cell else (0, 0)
            row.append({"rate": round(100.0 * ok / n, 1), "finished": n, "class": rate_class(n, n, ok)}
                       if n else dict(empty))
        matrix.append({"queue": name, "cells": row})
    return {"days": labels, "rows": matrix}


def _overlap(spans: Iterable[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    return sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in spans)


def _live_tails(lo: datetime, hi: datetime, offline: dict[str, list[tuple[datetime, datetime]]],
                names: dict[int, str]) -> dict[int, dict[str, float]]:
    """The outcome of each queue × template's last job still holds: its interval up to now (or ``hi``)."""
    valid = timedelta(hours=float(current_app.config["ROBOT"].get("window_hours", 4)))
    out: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(TIMES, 0.0))
    for tail in db.session.scalars(select(RollupTail).where(RollupTail.ended_at >= lo - valid)):
        a, b = max(tail.ended_at, lo), min(tail.ended_at + valid, hi)
        if a >= b:
            continue
        seconds, down = (b - a).total_seconds(), _overlap(offline.get(names.get(tail.queue_id, ""), []), a, b)
        piece = out[tail.queue_id]
        piece["known_seconds"] += seconds
        piece["known_offline_seconds"] += down
        if tail.ok:
            piece["up_seconds"] += seconds
            piece["up_offline_seconds"] += down
    return out


def availability(start: date, end: date) -> list[dict[str, Any]]:
    """ARGO availability and reliability per queue over [start, end], from the rollups.

    Reliability leaves the offline time out of both terms, so it never exceeds 100 %.
    """
    lo, hi = _range(start, end)
    hi = min(hi, utcnow())
    offline = status_intervals(QueueStatus.OFFLINE.value, lo, hi)
    queues = list(db.session.scalars(select(Queue).order_by(Queue.name)))
    sums = rollup_sums(start, end, ("queue_id",), TIMES)
    live = _live_tails(lo, hi, offline, {q.id: q.name for q in queues})
    out = []
    for queue in queues:
        row, extra = sums[(queue.id,)], live.get(queue.id, dict.fromkeys(TIMES, 0.0))
        known, up, known_off, up_off = (row[c] + extra[c] for c in TIMES)
        on = known - known_off
        out.append({
            "queue": queue.name, "known_hours": round(known / 3600, 2), "up_hours": round(up / 3600, 2),
            "offline_hours": round(_overlap(offline.get(queue.name, []), lo, hi) / 3600, 2),
            "availability": round(min(100.0, 100 * up / known), 1) if known > 0 else None,
            "reliability": round(min(100.0, 100 * (up - up_off) / on), 1) if on > 0 else None,
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
    bands = {(b.queue_id, b.template, b.metric): b for b in db.session.scalars(
        select(MetricBand).where(MetricBand.queue_id.in_({k[0] for k in groups})))}
    for key, group in groups.items():
        band = bands.get(key)
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


def signatures(since: date, queue_id: int | None = None) -> list[dict[str, Any]]:
    """Failure signatures since ``since`` (UTC day), most jobs first: how many jobs and queues
    carry each, and on which days; from the reason rollup, so retention does not thin it."""
    from hcflask.models import RollupReason

    query = select(RollupReason.reason, func.sum(RollupReason.n), func.count(func.distinct(RollupReason.queue_id)),
                   func.min(RollupReason.day), func.max(RollupReason.day)).where(
        RollupReason.day >= since).group_by(RollupReason.reason).order_by(func.sum(RollupReason.n).desc())
    if queue_id is not None:
        query = query.where(RollupReason.queue_id == queue_id)
    return [{"signature": sig, "jobs": int(jobs), "queues": queues, "first_day": first.isoformat(),
             "last_day": last.isoformat()} for sig, jobs, queues, first, last in db.session.execute(query)]

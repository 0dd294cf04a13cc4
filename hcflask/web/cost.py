"""The cost of testing: the core-hours test jobs used, per queue, day and
template, read from the rollups (issue 12's ``Rollup`` and ``RollupTotal``,
kept where jobs are judged; never the raw job table).

Test jobs use the resources they protect.  Where ``hc queue discover``
recorded a partition's CPUs (``Queue.cpus``) the cost is also shown as a
share of that partition's capacity over the same time.  On /robot, each
queue's hours spent excluded stand next to the test core-hours that kept
it watched, so the operator sees both sides of the balance.

The report sums come from :mod:`hcflask.web.robot.stats`, imported inside the
functions: that module sits in the robot blueprint's package, whose import
loads its pages, which the CLI's text report must not pay for.  (stats does
not import this module: the start-up warm-up that needs both is ``web.warm``.)  The rollup
models are imported by the functions that read them, so the text report, which only needs
:func:`share`, does not declare them (:mod:`hcflask.models`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import Queue, utcnow
from hcflask.states import QueueStatus


def share(core_seconds: float, cpus: int | None, seconds: float) -> float | None:
    """Core seconds as a share of ``cpus`` × ``seconds`` (None when the capacity is unknown)."""
    if not cpus or seconds <= 0:
        return None
    return core_seconds / (cpus * seconds)


def _span(start: date, end: date) -> float:
    """Seconds of the days [start, end], today only up to now."""
    lo = datetime.combine(start, time.min)
    hi = min(datetime.combine(end, time.min) + timedelta(days=1), utcnow())
    return max(0.0, (hi - lo).total_seconds())


def by_queue_template(start: date, end: date) -> list[dict[str, Any]]:
    """Core-hours per queue × template over the days [start, end], with the share of capacity
    (from the report sums, which keep past days per process)."""
    from hcflask.web.robot.stats import rollup_sums  # see the module's docstring

    queues = {q.id: q for q in db.session.scalars(select(Queue))}
    span = _span(start, end)
    rows = []
    for (queue_id, template), sums in rollup_sums(start, end, ("queue_id", "template"), ("core_seconds",)).items():
        q = queues.get(queue_id)
        if q is not None:
            seconds = sums["core_seconds"]
            rows.append({"queue": q.name, "template": template, "cpus": q.cpus, "core_seconds": seconds,
                         "core_hours": round(seconds / 3600, 3), "share": share(seconds, q.cpus, span)})
    return sorted(rows, key=lambda r: (r["queue"], r["template"]))


def pivot(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`by_queue_template` as one row per queue (total, share, and a column per template):
    165 queues × 6 templates make 165 rows, not 990."""
    templates = sorted({r["template"] for r in rows})
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = out.setdefault(r["queue"], {"queue": r["queue"], "core_seconds": 0.0, "share": None, "hours": {}})
        row["core_seconds"] += r["core_seconds"]
        row["hours"][r["template"]] = r["core_hours"]
        if r["share"] is not None:
            row["share"] = (row["share"] or 0.0) + r["share"]
    for row in out.values():
        row["core_hours"] = round(row.pop("core_seconds") / 3600, 3)
    return {"templates": templates, "rows": list(out.values())}


def by_day(start: date, end: date, queue: Queue) -> list[dict[str, Any]]:
    """One queue's core-hours per day and template, with the share of that day's capacity."""
    from hcflask.models import Rollup

    rows = db.session.execute(
        select(Rollup.day, Rollup.template, Rollup.core_seconds)
        .where(Rollup.queue_id == queue.id, Rollup.day >= start, Rollup.day <= end)
        .order_by(Rollup.day.desc(), Rollup.template))
    return [{"day": day.isoformat(), "template": template, "core_hours": round(seconds / 3600, 3),
             "share": share(seconds, queue.cpus, _span(day, day))} for day, template, seconds in rows]


def balance(start: date, end: date) -> list[dict[str, Any]]:
    """Per queue: hours spent excluded over [start, end] and the test core-hours spent on it then."""

    lo = datetime.combine(start, time.min)
    hi = min(datetime.combine(end, time.min) + timedelta(days=1), utcnow())
    from hcflask.web.robot.stats import status_intervals

    excluded = status_intervals(QueueStatus.EXCLUDED.value, lo, hi)
    spent: dict[str, float] = defaultdict(float)
    for row in by_queue_template(start, end):
        spent[row["queue"]] += row["core_seconds"]
    out = []
    for name in db.session.scalars(select(Queue.name).order_by(Queue.name)):
        hours = sum((min(b, hi) - max(a, lo)).total_seconds() for a, b in excluded.get(name, [])) / 3600
        out.append({"queue": name, "excluded_hours": round(max(0.0, hours), 2),
                    "test_core_hours": round(spent.get(name, 0.0) / 3600, 3)})
    return out


def prometheus_lines(label: Callable[[str], str]) -> list[str]:
    """``hc_test_core_seconds_total{queue,template}`` from the all-time rollups (``label`` escapes a value)."""
    lines = ["# HELP hc_test_core_seconds_total Core seconds used by test jobs (the cost of testing).",
             "# TYPE hc_test_core_seconds_total counter"]
    from hcflask.models import RollupTotal

    rows = db.session.execute(select(Queue.name, RollupTotal.template, RollupTotal.core_seconds)
                              .join(Queue, Queue.id == RollupTotal.queue_id)
                              .order_by(Queue.name, RollupTotal.template))
    lines += [f'hc_test_core_seconds_total{{queue="{label(q)}",template="{label(t)}"}} {s:.0f}'
              for q, t, s in rows]
    return lines


def cost_of(kind: str, start: date | None = None, end: date | None = None,
            queue: Queue | None = None) -> list[dict[str, Any]]:
    """For the page includes: ``overview`` (queue × template), ``queue`` (one queue by day) or
    ``balance`` (the robot's), over [start, end] (default: the last 30 days)."""

    from hcflask.web.robot.stats import last_days

    first, end = last_days(end)
    start = start or first
    if kind == "queue" and queue is not None:
        return by_day(start, end, queue)
    if kind == "balance":
        return balance(start, end)
    return by_queue_template(start, end)


def overview_table(start: date, end: date) -> dict[str, Any]:
    """The /overview cost table: :func:`pivot` of the queue × template core-hours."""
    return pivot(by_queue_template(start, end))

"""Robot and overview pages, the switch form, and the Prometheus endpoint."""
from __future__ import annotations

import functools
import math
import re
from datetime import date, datetime, timedelta
from typing import Any

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from sqlalchemy import func, select
from wtforms import StringField

from hcflask.data import throughput
from hcflask.engine.robot.alerts import open_alerts
from hcflask.engine.robot.bands import pin_baseline
from hcflask.engine.robot.robot import set_enabled
from hcflask.engine.robot.rules import rule_table
from hcflask.extensions import db
from hcflask.models import (
    Alert,
    BackendHealth,
    Delivery,
    Job,
    MetricBand,
    Queue,
    QueueEvent,
    RobotEvent,
    RobotState,
    RollupTotal,
    Test,
    ValidationError,
    utcnow,
)
from hcflask.models.rollup import COUNTS
from hcflask.states import IN_FLIGHT, QueueStatus
from hcflask.times import parse_time
from hcflask.web import cost
from hcflask.web.auth import permission_required
from hcflask.web.queries import int_arg
from hcflask.web.robot import bp, stats

#: ``since`` in hours: at most 6 digits
MAX_HOURS = 999_999
EVENT_KINDS = ("exclude", "recover", "rollback", "switch", "alert_open", "alert_close", "action", "baseline")


class SwitchForm(FlaskForm):
    reason = StringField("Reason")


#: a day in a query: YYYY-MM-DD in the years 1970-2999 (the OpenAPI document states the same pattern)
_YEAR = r"(19[7-9][0-9]|2[0-9]{3})"
_LEAP = r"(19(7[26]|8[048]|9[26])|(2[0-9])([02468][48]|[13579][26]|[2468]0)|(20|24|28)00)"
DAY_PATTERN = (rf"{_YEAR}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
               rf"|02-(0[1-9]|1[0-9]|2[0-8]))|{_LEAP}-02-29")
#: ``since``: hours back (at most 6 digits, about a century) or a day
SINCE_PATTERN = rf"[0-9]{{1,6}}|{DAY_PATTERN}"



def parse_day(value: str | None, default: date, field: str = "day") -> date:
    """A ``YYYY-MM-DD`` query parameter (empty: the default), a 400 naming ``field`` otherwise."""
    if not value:
        return default
    try:
        if not re.fullmatch(DAY_PATTERN, value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, f"expected a day YYYY-MM-DD (years 1970-2999), got {value!r}") from None


def date_range(args: Any, default_days: int = stats.REPORT_DAYS) -> tuple[date, date]:
    """``from``/``to`` (YYYY-MM-DD) or the last ``days`` days, at most ``[reports] max_days``.

    A bad or too wide range is a 400 naming the field, never a silent clamp.
    """
    widest = int(current_app.config["REPORTS_MAX_DAYS"])
    end = parse_day(args.get("to"), utcnow().date(), "to")
    span = int_arg(args, "days", default_days, high=widest)
    start = parse_day(args.get("from"), end - timedelta(days=span - 1), "from")
    if start > end:
        raise ValidationError("from", f"must not be after to ({end.isoformat()})")
    if (end - start).days + 1 > widest:
        raise ValidationError("from", f"the range may span at most {widest} days")
    return start, end


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Any:
    return render_template("error.html", code=400, message=str(exc)), 400


def event_query(args: Any) -> Any:
    """The event log, filtered by ``queue``, ``kind`` and ``since`` (hours or YYYY-MM-DD)."""
    query = select(RobotEvent).order_by(RobotEvent.id.desc())
    if args.get("queue"):
        query = query.where(RobotEvent.queue == args["queue"])
    kind = args.get("kind")
    if kind:
        if kind not in EVENT_KINDS:
            raise ValidationError("kind", f"unknown event kind {kind!r} (one of: {', '.join(EVENT_KINDS)})")
        query = query.where(RobotEvent.kind == kind)
    since = args.get("since", "")
    if re.fullmatch(r"[0-9]+", since):
        hours = int_arg(args, "since", 0, low=0, high=MAX_HOURS)
        query = query.where(RobotEvent.time >= utcnow() - timedelta(hours=hours))
    elif since:
        day = parse_day(since, utcnow().date(), "since")
        query = query.where(RobotEvent.time >= datetime.combine(day, datetime.min.time()))
    return query


def exclusions() -> list[dict[str, Any]]:
    rows = []
    for queue in db.session.scalars(select(Queue).where(Queue.status == QueueStatus.EXCLUDED.value)
                                    .order_by(Queue.name)):
        event = db.session.scalar(select(QueueEvent).where(
            QueueEvent.queue_id == queue.id, QueueEvent.new_status == QueueStatus.EXCLUDED.value,
        ).order_by(QueueEvent.id.desc()).limit(1))
        rows.append({"queue": queue.name, "since": event.time if event else queue.status_changed_at,
                     "rule": event.rule if event else None, "reason": event.reason if event else "",
                     "actor": event.actor if event else "", "job_ids": event.job_ids if event else []})
    return rows


@bp.route("/robot")
def robot() -> Any:
    day = parse_day(request.args.get("day"), utcnow().date())
    state = RobotState.get()
    db.session.commit()
    events = list(db.session.scalars(event_query(request.args).limit(200)))
    outages = list(db.session.scalars(select(BackendHealth).where(BackendHealth.available.is_(False))))
    return render_template(
        "robot/robot.html", day=day, tiles=stats.tiles(day), state=state, exclusions=exclusions(),
        alerts=open_alerts(), recent_alerts=_recent_alerts(), rules=rule_table(current_app.config["ROBOT"]),
        events=events, kinds=EVENT_KINDS, filters=request.args, form=SwitchForm(), outages=outages,
        deliveries=db.session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(50)).all(),
        queue_names=list(db.session.scalars(select(Queue.name).order_by(Queue.name))),
    )


def _recent_alerts() -> list[Alert]:
    return list(db.session.scalars(select(Alert).where(Alert.closed_at.is_not(None))
                                   .order_by(Alert.closed_at.desc()).limit(10)))


@bp.route("/robot/switch", methods=["POST"])
@permission_required("robot.switch")
def switch() -> Any:
    form = SwitchForm()
    if form.validate_on_submit():
        enabled = request.form.get("enabled") == "1"
        event = set_enabled(enabled, current_user.username, form.reason.data or "")
        flash(f"Auto-exclusion is {'on' if enabled else 'off'}" + ("." if event else " (unchanged)."), "ok")
    else:
        flash("The form expired; try again.", "error")
    return redirect(url_for("robot.robot"))


@bp.route("/robot/bands/<int:band_id>/baseline", methods=["POST"])
@permission_required("robot.baseline")
def pin(band_id: int) -> Any:
    """Pin a band's baseline to a window (both empty: back to the first jobs)."""
    band = db.get_or_404(MetricBand, band_id)
    queue = db.session.get_one(Queue, band.queue_id)
    if not SwitchForm().validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("ui.queue", name=queue.name))
    try:
        start, end = (parse_time(v, k) if v else None
                      for k, v in (("from", request.form.get("from", "")), ("to", request.form.get("to", ""))))
    except ValidationError as exc:
        flash(f"{exc} (UTC unless an offset is given, like 2026-11-24T14:00+01:00).", "error")
        return redirect(url_for("ui.queue", name=queue.name))
    if (start is None) != (end is None) or (start and end and start >= end):
        flash("Give both ends of the baseline window (from before to), or neither.", "error")
    else:
        pin_baseline(band, start, end, current_user.username)
        flash(f"Baseline of {band.metric} ({band.template}) on {queue.name}: mean {band.mean}, σ {band.sigma}, "
              f"{band.points} points.", "ok")
    return redirect(url_for("ui.queue", name=queue.name))


@bp.route("/overview")
def overview() -> Any:
    start, end = date_range(request.args)
    heat_start = max(start, stats.last_days(end)[0])
    return render_template(
        "robot/overview.html", start=start, end=end, excluded=stats.excluded_per_day(start, end),
        jobs=stats.jobs_per_day(start, end), heat=stats.heatmap(heat_start, end),
        availability=stats.availability(start, end), outcomes=stats.OUTCOMES,
    )


@bp.app_template_filter("day_epoch")
def day_epoch(day: str) -> int:
    """'2026-11-24' → seconds since the epoch at its midnight UTC (the plots' x axis)."""
    return int((datetime.combine(date.fromisoformat(day), datetime.min.time()) - datetime(1970, 1, 1))
               .total_seconds())


@bp.app_template_filter("heat_cells")
def heat_cells(cells: list[dict[str, Any]], labels: list[str]) -> Markup:
    """One heat-map row's cells, built here: 5,000 cells through Jinja took 200 ms of /overview.

    The class is one of :func:`stats.rate_class`'s words; the day labels are escaped once each.
    """
    parts = []
    for label, cell in zip(_escaped(tuple(labels)), cells, strict=True):
        rate = cell["rate"]
        shown = "" if rate is None else str(math.floor(rate + 0.5))
        parts.append(f'<td class="c-{HEAT_CLASSES[cell["class"]]}" title="{label}: '
                     f'{"–" if rate is None else float(rate)}% of {int(cell["finished"])}">{shown}</td>')
    return Markup("".join(parts))  # noqa: S704 - the strings are escaped, the rest are numbers


#: the heat-map cell classes (:func:`stats.rate_class`); anything else is a KeyError, not output
HEAT_CLASSES = {c: c for c in ("notest", "nofinished", "bad", "warn", "good")}


@functools.lru_cache(maxsize=64)
def _escaped(labels: tuple[str, ...]) -> list[str]:
    return [str(escape(label)) for label in labels]


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    """``robot_panel(queue)`` and ``metric_panel(test=...)`` for the queue and test page includes."""

    def robot_panel(queue: Queue) -> dict[str, Any]:
        summary = (RobotState.get().last_summary or {}).get(queue.name, {})
        series = stats.metric_series(queue=queue)
        return {"summary": summary, "series": series, "form": SwitchForm(),
                "alerts": [a for a in open_alerts() if a.queue == queue.name],
                "signatures": stats.signatures(utcnow().date() - timedelta(days=7), queue.id)}

    def metric_panel(test: Test) -> dict[str, Any]:
        series = stats.metric_series(test=test)
        return {"series": series, "histograms": stats.histograms(series) if series else []}

    return {"robot_panel": robot_panel, "metric_panel": metric_panel}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def rollup_lines() -> list[str]:
    """Job counters from the all-time rollups, and the jobs in flight (through the state index)."""
    lines = ["# HELP hc_jobs_in_flight Jobs not finished yet, by queue and state.",
             "# TYPE hc_jobs_in_flight gauge"]
    for name, state, n in db.session.execute(select(Queue.name, Job.state, func.count()).join(Queue).where(
            Job.state.in_(IN_FLIGHT)).group_by(Queue.name, Job.state).order_by(Queue.name, Job.state)):
        lines.append(f'hc_jobs_in_flight{{queue="{_label(name)}",state="{state}"}} {n}')
    totals = db.session.execute(select(Queue.name, RollupTotal.template, *(getattr(RollupTotal, c) for c in COUNTS))
                                .join(Queue, Queue.id == RollupTotal.queue_id)
                                .order_by(Queue.name, RollupTotal.template)).all()
    keys = [f'queue="{_label(row[0])}",template="{_label(row[1])}"' for row in totals]
    lines += ["# HELP hc_jobs_total Finished jobs by queue, template and outcome.", "# TYPE hc_jobs_total counter"]
    for i, outcome in enumerate(COUNTS[:4]):
        lines += [f'hc_jobs_total{{{key},outcome="{outcome}"}} {row[2 + i]}'
                  for key, row in zip(keys, totals, strict=True)]
    for metric, i, what in (("hc_job_core_seconds_total", 6, "Cores x wall time"),
                            ("hc_job_wall_seconds_total", 7, "Wall time")):
        lines += [f"# HELP {metric} {what} of finished jobs, by queue and template.", f"# TYPE {metric} counter"]
        lines += [f"{metric}{{{key}}} {row[i]:.0f}" for key, row in zip(keys, totals, strict=True)]
    return lines


def prometheus_text() -> str:
    lines = ["# HELP hc_queue_status 1 for the current status of each queue.", "# TYPE hc_queue_status gauge"]
    for queue in db.session.scalars(select(Queue).order_by(Queue.name)):
        for status in QueueStatus:
            lines.append(f'hc_queue_status{{queue="{_label(queue.name)}",backend="{_label(queue.backend)}",'
                         f'status="{status.value}"}} {int(queue.status == status.value)}')
    lines += rollup_lines()
    lines += cost.prometheus_lines(_label)
    lines += throughput.prometheus_lines(_label)
    lines += ["# HELP hc_alerts_open Open alerts by kind.", "# TYPE hc_alerts_open gauge"]
    open_by_kind = dict(db.session.execute(select(Alert.kind, func.count()).where(Alert.closed_at.is_(None))
                                           .group_by(Alert.kind)).all())
    for kind in ("robot", "outage", "backend", "performance", "disk", "catalogue"):
        lines.append(f'hc_alerts_open{{kind="{kind}"}} {open_by_kind.get(kind, 0)}')
    robot = RobotState.get()
    lines += ["# HELP hc_robot_enabled 1 when auto-exclusion is switched on.", "# TYPE hc_robot_enabled gauge",
              f"hc_robot_enabled {int(robot.enabled)}"]
    if robot.last_run_at:
        stamp = (robot.last_run_at - datetime(1970, 1, 1)).total_seconds()
        lines += ["# HELP hc_robot_last_run_timestamp_seconds End of the last robot pass.",
                  "# TYPE hc_robot_last_run_timestamp_seconds gauge",
                  f"hc_robot_last_run_timestamp_seconds {stamp:.0f}"]
    db.session.commit()
    return "\n".join(lines) + "\n"


@bp.route("/metrics")
def metrics() -> Response:
    return Response(prometheus_text(), mimetype="text/plain; version=0.0.4")

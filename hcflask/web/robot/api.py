"""JSON for the robot and the overviews, on the ``api`` blueprint (/api/v1).

Reads are open (or need a login/token where ``read_requires_login``);
the switch and baseline pinning need an admin's API token.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app, g, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from hcflask.engine.robot.alerts import open_alerts
from hcflask.engine.robot.bands import pin_baseline
from hcflask.engine.robot.robot import set_enabled
from hcflask.engine.robot.rules import rule_table
from hcflask.extensions import db
from hcflask.models import Alert, MetricBand, Queue, RobotState, Test, ValidationError, utcnow
from hcflask.times import parse_time
from hcflask.web.api import bp, json_body, text_field
from hcflask.web.api.auth import permission_required
from hcflask.web.queries import INT64_MAX, int_arg
from hcflask.web.robot import stats
from hcflask.web.robot.routes import date_range, event_query, exclusions, parse_day


@bp.route("/robot/status")
def robot_status() -> Any:
    state = RobotState.get()
    in_config = bool(current_app.config["ROBOT"].get("enabled", True))
    payload = {**state.to_dict(), "enabled_in_config": in_config, "active": state.enabled and in_config,
               "queues": state.last_summary or {}, "exclusions": exclusions(),
               "alerts": [a.to_dict() for a in open_alerts()], "rules": rule_table(current_app.config["ROBOT"])}
    db.session.commit()
    for row in payload["exclusions"]:
        row["since"] = row["since"].isoformat(timespec="seconds") + "Z" if row["since"] else None
    return jsonify(payload)


@bp.route("/robot/signatures")
def robot_signatures() -> Any:
    """Failure signatures since ``since`` (a UTC day; default 7 days back), optionally of one ``queue``."""
    first = parse_day(request.args.get("since"), utcnow().date() - timedelta(days=7), "since")
    queue_id = None
    if request.args.get("queue"):  # a filter: no such queue has no signatures
        queue_id = db.session.scalar(select(Queue.id).where(Queue.name == request.args["queue"],
                                                            Queue.deleted_at.is_(None))) or 0
    return jsonify({"since": first.isoformat(), "signatures": stats.signatures(first, queue_id)})


@bp.route("/robot/tiles")
def robot_tiles() -> Any:
    day = parse_day(request.args.get("day"), utcnow().date())
    return jsonify({"day": day.isoformat(), "tiles": stats.tiles(day)})


@bp.route("/robot/events")
def robot_events() -> Any:
    limit = int_arg(request.args, "limit", 200, low=1, high=1000)
    return jsonify({"items": [e.to_dict() for e in db.session.scalars(event_query(request.args).limit(limit))]})


@bp.route("/robot/alerts")
def robot_alerts() -> Any:
    query = select(Alert).order_by(Alert.id.desc()).limit(200)
    if request.args.get("open") not in (None, "true", "false"):
        raise ValidationError("open", "must be true or false")
    if request.args.get("open") == "true":
        query = query.where(Alert.closed_at.is_(None))
    return jsonify({"items": [a.to_dict() for a in db.session.scalars(query)]})


@bp.route("/robot/replay")
def robot_replay() -> Any:
    """``?from=ISO&to=ISO&step=5m&set=key=value...``: the rules over stored history; nothing written."""
    from hcflask.engine.robot.replay import parse_sets, parse_step, replay

    for field in ("from", "to"):
        if not request.args.get(field):
            raise ValidationError(field, "required: an ISO date/time (UTC)")
    start, end = parse_time(request.args["from"], "from"), parse_time(request.args["to"], "to")
    return jsonify(replay(start, end, parse_step(request.args.get("step", "5m")),
                          parse_sets(request.args.getlist("set"))))


@bp.route("/robot/switch", methods=["POST"])
@permission_required("robot.switch")
def robot_switch() -> Any:
    body = json_body({"enabled", "reason"})
    if not isinstance(body.get("enabled"), bool):
        raise ValidationError("enabled", "required: true or false")
    set_enabled(body["enabled"], g.api_user.username, text_field(body, "reason"))
    return jsonify(RobotState.get().to_dict())


@bp.route("/robot/bands")
def robot_bands() -> Any:
    query = select(MetricBand).order_by(MetricBand.id)
    if request.args.get("queue"):
        queue = db.session.scalar(select(Queue).where(Queue.name == request.args["queue"]))
        query = query.where(MetricBand.queue_id == (queue.id if queue else -1))
    return jsonify({"items": [b.to_dict() for b in db.session.scalars(query)]})


def _when(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(key, f"expected an ISO date/time, got {value!r}")
    return parse_time(value, key)


@bp.route("/robot/bands/<int:band_id>/baseline", methods=["POST"])
@permission_required("robot.baseline")
def robot_pin(band_id: int) -> Any:
    """Pin the baseline to ``{"from": ..., "to": ...}``; both null: back to the first jobs."""
    band = db.session.get(MetricBand, band_id)
    if band is None:
        raise NotFound(f"no band {band_id}")
    body = json_body({"from", "to"})
    start, end = _when(body, "from"), _when(body, "to")
    if (start is None) != (end is None):
        raise ValidationError("to" if end is None else "from", "give both from and to, or neither")
    if start and end and start >= end:
        raise ValidationError("to", "must be after from")
    pin_baseline(band, start, end, g.api_user.username)
    return jsonify(band.to_dict())


@bp.route("/robot/metrics")
def robot_metrics() -> Any:
    """Metric series with bands: ``?queue=NAME`` or ``?test=ID`` (plus histograms for a test)."""
    queue = test = None
    if request.args.get("queue"):
        queue = db.session.scalar(select(Queue).where(Queue.name == request.args["queue"]))
        if queue is None:
            raise NotFound(f"no queue {request.args['queue']!r}")
    if request.args.get("test") is not None:
        test = db.session.get(Test, int_arg(request.args, "test", 0, high=INT64_MAX))
        if test is None:
            raise NotFound(f"no test {request.args['test']}")
    series = stats.metric_series(queue=queue, test=test)
    return jsonify({"series": series, "histograms": stats.histograms(series) if series else []})


@bp.route("/overview/<any(excluded, jobs, heatmap, availability):kind>")
def overview_data(kind: str) -> Any:
    start, end = date_range(request.args)
    function = {"excluded": stats.excluded_per_day, "jobs": stats.jobs_per_day, "heatmap": stats.heatmap,
                "availability": stats.availability}[kind]
    return jsonify({"from": start.isoformat(), "to": end.isoformat(), "data": function(start, end)})

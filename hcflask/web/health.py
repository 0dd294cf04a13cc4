"""``/healthz``: is this host's scheduler alive, are its ticks fresh, do its backends answer?

Read from the database (host leases, tick heartbeats, backend health, all
keyed by host), and aged by the database's clock, so the answer is the same
whichever gunicorn worker -- or host, or ``--no-scheduler`` replica -- gives
it.  HTTP 503 with the reasons when this host's scheduler is missing or one
of its ticks is stale, and on every host while hosts are live but none holds
the core lease ("no core for 55 s: node-b holds it, heartbeat 55 s old": no
test starts or ends, the robot does not run); HTTP 200 with ``"status":
"degraded"`` while a backend does not answer, a host's clock is more than
30 s off the database's, or this host's submission or monitor tick last took
more than twice its interval (the engine is behind); never a traceback.  ``"core"`` says which host
holds the core lease, its epoch, and how old its core ticks are.  With ``read_requires_login``
an anonymous caller gets the status word only (a liveness answer).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Flask, current_app, jsonify
from flask_login import current_user
from sqlalchemy import select

from hcflask.engine.service import corelease
from hcflask.engine.service.clock import db_now, skew_problem
from hcflask.extensions import db
from hcflask.models import BackendHealth, CoreLease, Host, TickRun

log = logging.getLogger("hcflask.web")
#: tick kinds every scheduler runs, and those only the core runs
TICKS = {"submission": "SCHEDULER_SUBMISSION_SECONDS", "monitor": "SCHEDULER_MONITOR_SECONDS"}
CORE_TICKS = {"core": "SCHEDULER_CORE_SECONDS", "actions": "SCHEDULER_ACTIONS_SECONDS"}


def healthz() -> Any:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        body = report(app)
    except Exception as exc:  # noqa: BLE001 - a health check answers, whatever happens
        db.session.rollback()
        log.exception("/healthz failed")
        body = {"status": "failing", "reasons": [f"cannot read the database: {type(exc).__name__}"]}
    code = 503 if body["status"] == "failing" else 200
    if app.config["READ_REQUIRES_LOGIN"] and not current_user.is_authenticated:
        body = {"status": body["status"]}
    return jsonify(body), code


def _grouped(rows: Any, key: str, now: datetime) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row.host, {})[getattr(row, key)] = row.to_dict(now) if key == "name" else row.to_dict()
    return out


def report(app: Flask) -> dict[str, Any]:
    from hcflask.engine.service.scheduler import core_here, running_here

    now = db_now()
    me = app.config["HOST_NAME"]
    hosts = {h.name: h for h in db.session.scalars(select(Host).order_by(Host.name))}
    ticks = _grouped(db.session.scalars(select(TickRun)), "name", now)
    backends = _grouped(db.session.scalars(select(BackendHealth)), "backend", now)
    lease = db.session.get(CoreLease, corelease.ROW)
    core_since = lease.taken_at if lease is not None and lease.holder == me and lease.lease_until and \
        lease.lease_until > now else None
    reasons = (_scheduler_reasons(app, hosts.get(me), ticks.get(me, {}), now, core_since)
               if app.config["SCHEDULER_ENABLED"] else [])
    down = [f"backend {name} does not answer: {b['error']}" for name, b in backends.get(me, {}).items()
            if not b["available"]]
    core_host, no_core = corelease.describe(now)
    if core_host is None and any(h.live(now) for h in hosts.values()):
        reasons.append(no_core)
    elif core_host is None and not app.config["SCHEDULER_ENABLED"]:  # a web-only replica
        down.append("no scheduler runs on any host (no live host lease)")
    down += [p for h in hosts.values() if h.live(now) for p in [skew_problem(h.name, h.clock_offset or 0.0)] if p]
    down += busy_ticks(app, ticks.get(me, {})) if app.config["SCHEDULER_ENABLED"] else []
    status = "failing" if reasons else "degraded" if down else "ok"
    core_ticks = ticks.get(core_host or "", {})
    return {
        "status": status, "reasons": reasons + down, "host": me,
        "scheduler_enabled": app.config["SCHEDULER_ENABLED"],
        "scheduler_in_this_process": running_here(app), "core_in_this_process": core_here(app),
        "core_host": core_host,
        "core": {"host": core_host, "lease": lease.to_dict(now) if lease else None,
                 "ticks": {k: core_ticks[k]["age_seconds"] for k in CORE_TICKS if k in core_ticks}},
        "database_time": now.isoformat(timespec="seconds") + "Z",
        "hosts": {name: h.to_dict(now) for name, h in hosts.items()},
        "ticks": ticks.get(me, {}), "backends": backends.get(me, {}),
        "ticks_by_host": ticks, "backends_by_host": backends,
    }


def _scheduler_reasons(app: Flask, host: Host | None, ticks: dict[str, Any], now: datetime,
                       core_since: datetime | None) -> list[str]:
    """Why this host's scheduler cannot be trusted ([] when it can).  Its core ticks are
    expected while it holds the core lease, and aged from when it took it at the oldest (a
    host that just took over has not run them yet, or last ran them in an earlier stint)."""
    name = app.config["HOST_NAME"]
    if host is None:
        return [f"no scheduler has run on host {name}"]
    if not host.live(now):
        return [f"no scheduler on host {name}: its lease ran out at {host.lease_until:%Y-%m-%d %H:%M:%S} UTC"]
    expected = {**TICKS, **(CORE_TICKS if core_since is not None else {})}
    reasons = []
    for kind, key in expected.items():
        limit = max(float(app.config["SCHEDULER_STALE_SECONDS"]), 3 * float(app.config[key]))
        tick = ticks.get(kind)
        core = (now - core_since).total_seconds() if kind in CORE_TICKS and core_since else None
        if tick is None or tick["age_seconds"] is None:
            started = (now - host.started_at).total_seconds() if host.started_at else 0
            if started > limit and (core is None or core > limit):
                since, age = (("the service started", started) if core is None or started <= core
                              else ("it took the core role", core))
                reasons.append(f"{kind} tick has not run on {name} since {since} {age:.0f} s ago")
        elif tick["age_seconds"] > limit and (core is None or core > limit):
            reasons.append(f"{kind} tick on {name} last finished {tick['age_seconds']:.0f} s ago (limit {limit:.0f} s)")
    return reasons


def busy_ticks(app: Flask, ticks: dict[str, Any]) -> list[str]:
    """Ticks of this host whose last run took more than twice their interval: at least one whole
    run was skipped, the engine is the bottleneck.  An admin hears it before a tick goes stale."""
    found = []
    for kind, key in TICKS.items():
        interval, tick = float(app.config[key]), ticks.get(kind)
        if tick is not None and tick["seconds"] > 2 * interval:
            found.append(f"{kind} tick took {tick['seconds']:.1f} s, more than twice its {interval:g} s interval: "
                         "the engine is behind (see docs/scale.md)")
    return found

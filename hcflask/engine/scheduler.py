"""Running the ticks in-process with APScheduler.

Started by ``hc serve`` in each gunicorn worker after it forks; only the
worker that gets the instance lock runs the scheduler, the others serve the
web only.  One worker thread for all ticks, so ticks never race each other
on the same jobs; ``max_instances=1`` and ``coalesce=True`` so a slow tick
is skipped, not stacked.

Submission and monitor ticks drive the tests whose ``host`` is this
process's ``host_name``; the core tick runs only where the :class:`CoreLock`
is held (always, on SQLite; one process per database, on PostgreSQL).
"""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from hcflask.engine.common import log
from hcflask.engine.core import core_tick
from hcflask.engine.lock import CoreLock, InstanceLock
from hcflask.engine.monitor import monitor_tick
from hcflask.engine.reconcile import reconcile
from hcflask.engine.retention import retention_tick
from hcflask.engine.submission import submission_tick
from hcflask.extensions import db


def core_if_elected(app: Flask) -> None:
    """The core tick, if this process holds (or can take) the core role."""
    if _elected(app):
        core_tick(app)


def retention_if_elected(app: Flask) -> None:
    """Retention belongs to the core role too: one purger per database."""
    if _elected(app):
        retention_tick(app)


def _elected(app: Flask) -> bool:
    with app.app_context():
        return bool(app.extensions["hc_core_lock"].acquire())


TICKS = {
    "core": (core_if_elected, "SCHEDULER_CORE_SECONDS"),
    "retention": (retention_if_elected, "RETENTION_INTERVAL_SECONDS"),
    "submission": (submission_tick, "SCHEDULER_SUBMISSION_SECONDS"),
    "monitor": (monitor_tick, "SCHEDULER_MONITOR_SECONDS"),
}


def start(app: Flask) -> bool:
    """Start the scheduler in this process if enabled and the lock is free."""
    if not app.config["SCHEDULER_ENABLED"]:
        return False
    if app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true":
        return False  # the reloader's parent process: leave it to the child
    lock = InstanceLock(Path(app.instance_path) / "scheduler.lock")
    if not lock.acquire():
        log.info("scheduler runs in another process of this instance; serving web only")
        return False
    with app.app_context():
        app.extensions["hc_core_lock"] = CoreLock(db.engine)
    reconcile(app)
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
        timezone="UTC",
    )
    for name, (function, key) in TICKS.items():
        scheduler.add_job(
            function, "interval", args=[app], seconds=float(app.config[key]), id=name, name=name,
            next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    app.extensions["hc_scheduler"] = scheduler
    app.extensions["hc_scheduler_lock"] = lock
    log.info("scheduler started (pid %s)", os.getpid())
    return True


def stop(app: Flask) -> None:
    scheduler = app.extensions.pop("hc_scheduler", None)
    if scheduler is not None:
        scheduler.shutdown(wait=True)
    for key in ("hc_core_lock", "hc_scheduler_lock"):
        lock = app.extensions.pop(key, None)
        if lock is not None:
            lock.release()


def running_here(app: Flask) -> bool:
    return "hc_scheduler" in app.extensions


def core_here(app: Flask) -> bool:
    lock = app.extensions.get("hc_core_lock")
    return bool(lock is not None and lock.held)

"""Running the ticks in-process with APScheduler.

``hc serve`` starts :func:`keep_trying` in every gunicorn worker: a small
thread that tries the instance lock every ``[scheduler] lock_retry_seconds``
until it gets it, and then starts the scheduler in that worker.  The lock is
an ``flock`` the kernel drops when its process dies, so after a reload
(HUP), a worker's death or a recycled worker there is again exactly one
scheduler within seconds, and never two.

Each tick kind runs on its own one-thread executor (core, submission,
monitor, actions, retention and the host heartbeat), so a slow backend or
webhook never delays another kind; ``max_instances=1`` and ``coalesce=True`` keep a
kind single.  A run that cannot start because the previous one is still
busy is logged once per stuck run, with how long it has been running.

Submission and monitor ticks drive the tests whose ``host`` is this
service's ``host_name``; the core, actions and retention ticks run only
where the core lease is held (:mod:`hcflask.engine.service.corelease`), and every
commit they make is fenced by its epoch.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from hcflask.engine.common import log, tick
from hcflask.engine.data.retention import retention_tick
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.reconcile import reconcile
from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.notify import deliver
from hcflask.engine.service import corelease, hosts
from hcflask.engine.service.core import core_tick
from hcflask.engine.service.lock import InstanceLock, LockUnsupported
from hcflask.extensions import db


def core_if_elected(app: Flask) -> None:
    """The core tick, if this process holds (or can take) the core role."""
    with app.app_context():
        elected = app.extensions["hc_core_role"].acquire()
    if elected:
        core_tick(app)


@tick("actions")
@corelease.fenced
def _deliver() -> dict[str, int]:
    return deliver()


def retention_if_core(app: Flask) -> None:
    """Retention belongs to the core role too: one purger per database."""
    if core_here(app):
        retention_tick(app)


def actions_if_core(app: Flask) -> None:
    """Deliver the outbox where the core runs (the robot's decisions are made there)."""
    if core_here(app):
        _deliver(app)


def heartbeat(app: Flask) -> None:
    """Renew this host's lease and its core lease; a service that lost its host_name stops its ticks."""
    with app.app_context():
        try:
            role = app.extensions.get("hc_core_role")
            core = bool(role is not None and role.renew(corelease.busy_seconds(app)))
            hosts.claim(core=core)
        except hosts.HostTaken as exc:
            log.error("%s: stopping the scheduler in this worker", exc)
            app.extensions["hc_host_taken"] = str(exc)
            threading.Thread(target=stop, args=[app], daemon=True).start()
        except Exception:  # noqa: BLE001 - a database hiccup must not stop the heartbeat
            db.session.rollback()
            log.exception("host heartbeat failed")


TICKS: dict[str, tuple[Callable[[Flask], Any], str]] = {
    "core": (core_if_elected, "SCHEDULER_CORE_SECONDS"),
    "retention": (retention_if_core, "RETENTION_INTERVAL_SECONDS"),
    "submission": (submission_tick, "SCHEDULER_SUBMISSION_SECONDS"),
    "monitor": (monitor_tick, "SCHEDULER_MONITOR_SECONDS"),
    "actions": (actions_if_core, "SCHEDULER_ACTIONS_SECONDS"),
    "host": (heartbeat, "HOSTS_HEARTBEAT_SECONDS"),
}


#: the soonest a monitor tick a backend brought forward starts after the last one started: the
#: jobs that end meanwhile are judged together (a tick has a fixed cost of a few statements)
MONITOR_GAP = 0.25
#: how long a thread may keep the interpreter's lock while another waits for it (Python's default:
#: 5 ms).  The local backend's thread that starts jobs waits for it after every file it touches
#: while a tick runs; at 1 ms the service starts about a fifth more jobs a second (bench_engine)
SWITCH_INTERVAL = 0.001


class _QuietSkips(logging.Filter):
    """APScheduler warns on every skipped run of a busy job; :class:`Runs` says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_QuietSkips())


class Runs:
    """When the run of each tick kind in progress started; logs a stuck kind once per run.
    Brings the submission tick forward after a monitor tick that changed jobs, a submission or
    monitor tick that reached its cap forward to now, and the monitor tick forward when a
    backend heard jobs end (:meth:`monitor_soon`)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.reported: set[str] = set()
        self.monitor_started = self.monitor_seconds = 0.0
        #: a backend heard jobs end since the monitor tick last started
        self.news = False

    def wrap(self, kind: str, function: Callable[[Flask], Any]) -> Callable[[Flask], None]:
        def run(app: Flask) -> None:
            self.started[kind] = time.monotonic()
            if kind == "monitor":
                self.monitor_started, self.news = self.started[kind], False
            try:
                result = function(app)
            finally:
                if kind == "monitor":
                    self.monitor_seconds = time.monotonic() - self.monitor_started
                self.started.pop(kind, None)
                self.reported.discard(kind)
            said = result if isinstance(result, dict) else {}
            if kind == "submission" and said.get("more"):  # at its cap: on with the rest at once
                submit_now(app)
            elif kind == "monitor":
                if said.get("changed") and "submission" not in self.started:
                    submit_now(app)
                if said.get("more"):  # at its cap: on with the rest at once
                    bring_forward(app, "monitor", 0.0)
                elif self.news:  # jobs ended while it ran
                    self._monitor_again(app)

        return run

    def monitor_soon(self, app: Flask) -> None:
        """Bring the monitor tick forward: a backend heard jobs end (the local backend's wrappers).
        Once until the monitor next starts, and not sooner than :data:`MONITOR_GAP` after its last
        start; while it runs, it runs again when it ends (the order of the two flags makes sure
        one of the two places does it)."""
        if self.news:
            return
        self.news = True
        if "monitor" not in self.started:
            self._monitor_again(app)

    def _monitor_again(self, app: Flask) -> None:
        # the gap grows with the tick's own length: a monitor brought forward never takes more
        # than about half of its thread's time (its cost per pass grows with the jobs in flight)
        gap = max(MONITOR_GAP, 2 * self.monitor_seconds)
        bring_forward(app, "monitor", max(0.0, self.monitor_started + gap - time.monotonic()))

    def skipped(self, event: JobSubmissionEvent) -> None:
        kind = event.job_id
        since = self.started.get(kind)
        if since is not None and kind not in self.reported:
            self.reported.add(kind)
            log.warning("%s tick still busy after %.0f s; its next runs wait for it (logged once per run)",
                        kind, time.monotonic() - since)


def submit_now(app: Flask) -> None:
    """Run the submission tick now: a monitor tick that changed jobs may have judged some, and
    their tests want new ones.  A job's turn then takes one tick interval, not two (judged, then
    replaced at the next submission tick).  Not while a submission tick runs (the scheduler
    would skip the run and call the tick busy): its next interval comes soon enough."""
    bring_forward(app, "submission", 0.0)


def bring_forward(app: Flask, kind: str, seconds: float) -> None:
    """Run tick ``kind`` in ``seconds`` instead of at its next interval (it goes on from there)."""
    scheduler = app.extensions.get("hc_scheduler")
    if scheduler is None:
        return
    try:
        scheduler.modify_job(kind, next_run_time=datetime.now(UTC) + timedelta(seconds=seconds))
    except Exception:  # noqa: BLE001 - a scheduler shutting down: the interval runs it anyway
        log.debug("could not bring the %s tick forward", kind, exc_info=True)


def start(app: Flask) -> bool:
    """Start the scheduler in this process if enabled and the lock is free."""
    if not app.config["SCHEDULER_ENABLED"] or running_here(app) or app.extensions.get("hc_host_taken"):
        return False
    if app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true":
        return False  # the reloader's parent process: leave it to the child
    lock = app.extensions.setdefault("hc_scheduler_lock", InstanceLock(Path(app.instance_path) / "scheduler.lock"))
    if not lock.acquire():
        return False
    with app.app_context():
        try:
            hosts.claim()
        except hosts.HostTaken as exc:
            log.error("%s: no scheduler in this service", exc)
            app.extensions["hc_host_taken"] = str(exc)
            lock.release()
            return False
        app.extensions["hc_core_role"] = corelease.CoreRole()
    reconcile(app)
    sys.setswitchinterval(SWITCH_INTERVAL)
    app.extensions["hc_scheduler"] = _scheduler(app)
    log.info("scheduler started (pid %s)", os.getpid())
    return True


def _scheduler(app: Flask) -> BackgroundScheduler:
    runs = app.extensions["hc_runs"] = Runs()
    app.extensions["hc_monitor_soon"] = functools.partial(runs.monitor_soon, app)
    scheduler = BackgroundScheduler(
        executors={kind: ThreadPoolExecutor(1) for kind in TICKS},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
        timezone="UTC",
    )
    scheduler.add_listener(runs.skipped, EVENT_JOB_MAX_INSTANCES)
    for kind, (function, key) in TICKS.items():
        scheduler.add_job(
            runs.wrap(kind, function), "interval", args=[app], seconds=float(app.config[key]), id=kind,
            name=kind, executor=kind, next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    return scheduler


def keep_trying(app: Flask) -> threading.Thread:
    """Try for the scheduler now and every few seconds, until :func:`stop`."""
    stopping = app.extensions.setdefault("hc_stopping", threading.Event())
    pause = float(app.config["SCHEDULER_LOCK_RETRY_SECONDS"])

    def loop() -> None:
        while not stopping.is_set():
            try:
                start(app)
            except LockUnsupported as exc:
                log.error("%s", exc)
                return
            except Exception:  # noqa: BLE001 - keep trying: the database may be back next time
                log.exception("could not start the scheduler; trying again in %g s", pause)
            stopping.wait(pause)

    thread = threading.Thread(target=loop, name="hc-scheduler-lock", daemon=True)
    thread.start()
    return thread


def stop(app: Flask) -> None:
    """Stop trying, let running ticks finish, then drop the locks (in that order)."""
    app.extensions.setdefault("hc_stopping", threading.Event()).set()
    app.extensions.pop("hc_monitor_soon", None)
    scheduler = app.extensions.pop("hc_scheduler", None)
    if scheduler is not None:
        scheduler.shutdown(wait=True)
        log.info("scheduler stopped (pid %s)", os.getpid())
    role = app.extensions.pop("hc_core_role", None)
    if role is not None:
        with app.app_context():
            role.release()
    lock = app.extensions.pop("hc_scheduler_lock", None)
    if lock is not None:
        lock.release()


def running_here(app: Flask) -> bool:
    return "hc_scheduler" in app.extensions


def core_here(app: Flask) -> bool:
    role = app.extensions.get("hc_core_role")
    return bool(role is not None and role.held)

"""Plumbing the ticks share: backends, job refs, outages, heartbeats."""
from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy.orm.exc import StaleDataError

from hcflask.backends import Backend, JobRef, backend_class, get_backend
from hcflask.engine.jobs import fence
from hcflask.engine.service.clock import db_now
from hcflask.extensions import db
from hcflask.models import BackendHealth, FinalState, Job, TickRun, utcnow

log = logging.getLogger("hcflask.engine")
T = TypeVar("T")


def backend(name: str) -> Backend:
    """The app's instance of backend ``name`` (created on first use).

    ``[jobs] cancel_running`` is the default of every backend's
    ``cancel_running``; ``[backends.<name>]`` may override it.
    """
    cache = current_app.extensions.setdefault("hc_backends", {})
    if name in cache:
        return cache[name]
    section = {"cancel_running": current_app.config["JOBS_CANCEL_RUNNING"],
               **current_app.config["BACKENDS"].get(name, {})}
    found = get_backend(name, section, cache)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found.on_change = lambda: monitor_soon(app)
    return found


def monitor_soon(app: Flask) -> None:
    """A backend heard jobs change by itself: the service's scheduler brings the monitor forward
    (set by :mod:`hcflask.engine.service.scheduler`; nothing where no scheduler runs)."""
    hook = app.extensions.get("hc_monitor_soon")
    if hook is not None:
        hook()


def by_backend(jobs: Iterable[Job]) -> dict[str, list[Job]]:
    """Jobs grouped by their backend's name: each group is one batched call."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.backend, []).append(job)
    return groups


my_host = fence.my_host


def claimant() -> str:
    """Who claims a job for a backend call: this service and process (a restarted worker
    of the same service is another claimant, so its reconcile looks up what the dead one held)."""
    return f"{current_app.config['SERVICE_ID']}/{os.getpid()}"[:128]


def job_ref(job: Job) -> JobRef:
    return JobRef(
        backend_id=job.backend_id or "", name=job.name, queue=job.queue.name,
        queue_options=job.queue.options or {}, workdir=Path(job.workdir),
        cancel_requested=job.cancel_requested_at is not None,
    )


def backend_enforces_walltime(name: str) -> bool:
    return backend_class(name).enforces_walltime


def end_transaction() -> None:
    """Commit before a backend call or an action, so no write transaction
    (SQLite's one write lock) is held while a slow command runs.

    The loaded rows stay loaded (no expiry), so the caller does not reload
    each job one by one afterwards.
    """
    session = db.session()
    keep, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = keep


def record_health(name: str, error: str | None) -> None:
    """Remember whether backend ``name`` answered this host (``error`` None) or not."""
    row = db.session.get(BackendHealth, (my_host(), name)) or BackendHealth(
        host=my_host(), backend=name, available=True)
    now = utcnow()
    if error is None:
        if not row.available:
            log.warning("backend %s answers again (down since %s)", name, row.down_since)
        row.available, row.error, row.down_since = True, "", None
    else:
        if row.available or row.down_since is None:
            log.error("backend %s is unavailable: %s", name, error)
            row.down_since = now
        row.available, row.error = False, error
    row.checked_at = now
    db.session.add(row)


def tick(name: str) -> Callable[[Callable[[], T]], Callable[[Flask], T | None]]:
    """Run a tick body inside the app context, time it and record a heartbeat.

    An exception is logged and recorded, never raised into the scheduler,
    so one bad pass does not stop the loop.  A pass that lost a race (a job
    changed under it: its compare-and-set matched no row) or was fenced (its
    tests were adopted) is rolled back and not an error: the next pass reads
    again and decides again.
    """

    def decorate(body: Callable[[], T]) -> Callable[[Flask], T | None]:
        @functools.wraps(body)
        def run(app: Flask) -> T | None:
            with app.app_context():
                started = db_now()
                clock = time.monotonic()
                error = ""
                result: T | None = None
                try:
                    result = body()
                except fence.Fenced as exc:
                    db.session.rollback()
                    fence.report(exc)
                except (StaleDataError, FinalState) as exc:
                    db.session.rollback()
                    log.warning("%s tick: a job changed under it (%s); dropped, read again next pass", name, exc)
                except Exception as exc:  # noqa: BLE001 - the loop must go on
                    db.session.rollback()
                    error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]  # the log has the traceback
                    log.exception("%s tick failed", name)
                seconds = time.monotonic() - clock
                _heartbeat(name, started, seconds, error)
                if app.config.get("SCHEDULER_LOG_TICKS"):
                    log.info("tick %s %.4f s: %s", name, seconds, result)
                return result

        return run

    return decorate


def _heartbeat(name: str, started: Any, seconds: float, error: str) -> None:
    row = db.session.get(TickRun, (my_host(), name)) or TickRun(host=my_host(), name=name)
    row.pid = os.getpid()
    row.started_at, row.finished_at, row.seconds, row.error = started, db_now(), seconds, error
    db.session.add(row)
    db.session.commit()

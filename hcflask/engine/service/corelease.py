"""The core role as a lease on the database's clock, and the fence on core writes.

The core role (start, end and renew tests, the robot, alerts, the outbox,
adoption, retention) used to be a PostgreSQL advisory lock held by the
core's session.  A core that *pauses* (SIGSTOP, a frozen VM, a network cut
that leaves its TCP session open) keeps its session and so the lock: no
other host became core, and nothing said so.  Now the role is one row,
``core_lease`` (holder, ``epoch``, ``lease_until``), like a Kubernetes
``Lease`` or an etcd election:

* the core renews it from its heartbeat (and at each core tick) -- unless
  its core tick has been busy longer than the lease: a core that is only
  slow lets the role go too (logged once per stuck run);
* when it has run out by the database's clock, any live host takes it at its
  next core tick (at once if the holder ran on this machine and its process
  is gone) with a compare-and-set that bumps ``epoch``; it ends the old
  holder's PostgreSQL sessions (``pg_terminate_backend``, found by their
  ``application_name``) if that host's own lease ran out too, so no row lock
  of a paused transaction is left in the way, and raises a ``core`` alert
  naming the host that stopped answering and for how long;
* every commit of a core tick (:func:`fenced`) first re-reads the row
  (``FOR SHARE`` on PostgreSQL, so a take waits for that commit rather than
  slipping between the check and it) and is refused unless it still names
  this service at the epoch the tick started under.  A core that wakes up
  after losing the role writes nothing, logs once that it was fenced and is a
  plain host from then on (until it takes the role again at a new epoch).

A commit under a lease that ran out but that nobody took yet is allowed: the
epoch, not the clock, is the fencing token, so a tick longer than the lease
on a single host (SQLite) still gets its work done.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from hcflask.engine import notify
from hcflask.engine.robot.alerts import close_alert, raise_alert
from hcflask.engine.service import clock, hosts
from hcflask.extensions import db
from hcflask.models import CoreLease, Host

log = logging.getLogger("hcflask.engine")
KEY = "hc_core_fence"
ROW = 1
T = TypeVar("T")


class CoreFenced(RuntimeError):
    """Another service took the core role since this tick started."""


def application_name(host: str, service: str) -> str:
    """What a service's PostgreSQL sessions are called, so a new core can end a paused one's."""
    return f"hc {host} {service}"[:63]


def _lease() -> timedelta:
    return timedelta(seconds=float(current_app.config["HOSTS_LEASE_SECONDS"]))


class CoreRole:
    """This process's hold on the core role: the epoch it holds it under, or None."""

    def __init__(self) -> None:
        self.epoch: int | None = None
        self._mutex = threading.Lock()
        self._stuck_logged = False

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def acquire(self) -> bool:
        """At each core tick: renew the role if held, else take it if its lease ran out."""
        with self._mutex:
            try:
                return self._renew() or self._take()
            except DBAPIError:
                db.session.rollback()
                log.exception("could not renew or take the core role")
                return False

    def renew(self, busy_seconds: float | None = None) -> bool:
        """From the heartbeat: renew the role if held, unless the core tick is stuck past the lease."""
        if self.epoch is None:
            return False
        lease = _lease().total_seconds()
        if busy_seconds is not None and busy_seconds > lease:
            if not self._stuck_logged:
                self._stuck_logged = True
                log.error("core tick busy for %.0f s, longer than the core lease (%.0f s): the core role is "
                          "not renewed while it is stuck, another host may take it (logged once per stuck run)",
                          busy_seconds, lease)
            return True
        self._stuck_logged = False
        with self._mutex:
            return self._renew()

    def release(self) -> None:
        """On a clean stop: end the lease now, so another host takes the role at its next tick."""
        with self._mutex:
            if self.epoch is None:
                return
            try:
                # no holder: whoever takes it next raises no alert (nobody stopped answering)
                db.session.execute(update(CoreLease).where(*self._mine()).values(
                    holder="", lease_until=clock.db_now()))
                db.session.commit()
            except DBAPIError:
                db.session.rollback()
            self.epoch = None

    def lost(self, why: str) -> None:
        """Back to a plain host (logged once per epoch lost)."""
        if self.epoch is not None:
            log.error("fenced: this host (%s) lost the core role it held at epoch %d (%s); it writes nothing as "
                      "core and is a plain host now", current_app.config["HOST_NAME"], self.epoch, why)
        self.epoch = None

    def _mine(self) -> list[Any]:
        return [CoreLease.id == ROW, CoreLease.epoch == self.epoch,
                CoreLease.service_id == current_app.config["SERVICE_ID"]]

    def _renew(self) -> bool:
        if self.epoch is None:
            return False
        now = clock.db_now()
        done = db.session.execute(update(CoreLease).where(*self._mine()).values(
            lease_until=now + _lease(), renewed_at=now).execution_options(synchronize_session=False))
        db.session.commit()
        if done.rowcount:  # type: ignore[attr-defined]
            return True
        row = db.session.get(CoreLease, ROW, populate_existing=True)
        self.lost(f"{row.holder if row else 'nobody'} holds it at epoch {row.epoch if row else 0}")
        return False

    def _take(self) -> bool:
        me, service = current_app.config["HOST_NAME"], current_app.config["SERVICE_ID"]
        now = clock.db_now()
        row = db.session.get(CoreLease, ROW, populate_existing=True)
        if row is None:
            db.session.add(CoreLease(id=ROW, holder=me, service_id=service, epoch=1, lease_until=now + _lease(),
                                     taken_at=now, renewed_at=now))
            try:
                db.session.commit()
            except IntegrityError:  # another host inserted it first
                db.session.rollback()
                return False
            self.epoch = 1
            log.info("this host (%s) took the core role (epoch 1)", me)
            return True
        if (row.lease_until is not None and row.lease_until > now and row.service_id != service
                and not hosts.stale_here(row.service_id)):  # a kill -9 and a restart need not wait
            db.session.rollback()
            return False
        before = (row.holder, row.service_id, row.epoch, row.lease_until)
        db.session.expunge(row)
        holder_host = db.session.get(Host, before[0]) if before[0] else None
        if before[1] != service and holder_host is not None and not holder_host.live(now):
            _end_sessions(before[0], before[1])
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        try:
            done = db.session.execute(update(CoreLease).where(
                CoreLease.id == ROW, CoreLease.epoch == before[2], CoreLease.service_id == before[1],
            ).values(holder=me, service_id=service, epoch=before[2] + 1, lease_until=now + _lease(),
                     taken_at=now, renewed_at=now).execution_options(synchronize_session=False))
        except DBAPIError:  # the old holder's transaction holds the row: next tick
            db.session.rollback()
            log.warning("the core lease of %s ran out but its row is locked; trying again next tick", before[0])
            return False
        if not done.rowcount:  # type: ignore[attr-defined]
            db.session.rollback()
            return False
        if before[0] and before[0] != me:
            _alert(before[0], before[3], holder_host, me, before[2] + 1, now)
        db.session.commit()
        self.epoch = before[2] + 1
        log.warning("this host (%s) took the core role (epoch %d) from %s, whose lease ran out at %s",
                    me, self.epoch, before[0] or "nobody", before[3])
        return True

    def token(self) -> tuple[str, int] | None:
        return None if self.epoch is None else (str(current_app.config["SERVICE_ID"]), self.epoch)


def _end_sessions(host: str, service: str) -> None:
    """End the PostgreSQL sessions of a service whose host and core leases both ran out."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    ended = db.session.scalars(text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name "
        "AND pid <> pg_backend_pid()"), {"name": application_name(host, service)}).all()
    if ended:
        log.warning("ended %d database sessions of host %s (its leases ran out)", sum(map(bool, ended)), host)


def _alert(old: str, until: datetime | None, host: Host | None, me: str, epoch: int, now: datetime) -> None:
    silent = (now - host.heartbeat_at).total_seconds() if host is not None and host.heartbeat_at else None
    since = f"its heartbeat is {silent:.0f} s old" if silent is not None else "it never sent a heartbeat"
    message = (f"core host {old} stopped answering: its core lease ran out at "
               f"{until:%Y-%m-%d %H:%M:%S} UTC and {since}; {me} took the core role (epoch {epoch})"
               if until else f"core host {old} stopped answering; {me} took the core role (epoch {epoch})")
    alert, created = raise_alert("core", f"core:{old}", f"core host {old} stopped answering", message, now=now)
    log.error("%s", message)
    if created is not None:
        notify.enqueue(created, notify.event_data(created, title=alert.title, kind="core"))


def watch_core_alerts(now: datetime | None = None) -> None:
    """Close a ``core`` alert once the host it names answers again (as a plain host)."""
    from hcflask.engine.robot.alerts import open_alerts

    now = now or clock.db_now()
    for alert in open_alerts("core"):
        host = db.session.get(Host, alert.key.removeprefix("core:"))
        if host is not None and host.live(now):
            closed = close_alert(alert, f"host {host.name} answers again, as a plain host")
            notify.enqueue(closed, notify.event_data(closed, title=alert.title, kind="core"))
    db.session.commit()


def fenced(body: Callable[[], T]) -> Callable[[], T | None]:
    """Run a core tick body with every commit conditional on the epoch it started under."""

    @functools.wraps(body)
    def run() -> T | None:
        role: CoreRole | None = current_app.extensions.get("hc_core_role")
        if role is None:  # a tick run by hand (tests, hc commands): nothing to fence against
            return body()
        token = role.token()
        if token is None:
            return None
        session = db.session()
        session.info[KEY] = token
        try:
            return body()
        except CoreFenced as exc:
            db.session.rollback()
            role.lost(str(exc))
            return None
        finally:
            session.info.pop(KEY, None)

    return run


@event.listens_for(Session, "before_commit")
def _check(session: Session) -> None:
    """Refuse the commit of a core tick whose epoch is no longer the lease's."""
    token = session.info.get(KEY)
    if token is None:
        return
    query = select(CoreLease.holder, CoreLease.service_id, CoreLease.epoch).where(CoreLease.id == ROW)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = session.execute(query).first()
    if row is None or (row.service_id, row.epoch) != token:
        raise CoreFenced(f"{row.holder if row else 'nobody'} took the core role at epoch {row.epoch if row else 0}")


def describe(now: datetime) -> tuple[str | None, str]:
    """(the live core host or None, '' or the sentence saying why there is none) for /healthz and hc doctor."""
    row = db.session.get(CoreLease, ROW)
    if row is None or not row.holder:
        return None, ("no core: its last holder stopped and no host has taken the core role since" if row
                      else "no core: no host has taken the core role yet")
    if row.lease_until is not None and row.lease_until > now:
        return row.holder, ""
    last = row.renewed_at or row.lease_until
    gone = (now - last).total_seconds() if last else 0.0
    host = db.session.get(Host, row.holder)
    beat = (f"heartbeat {(now - host.heartbeat_at).total_seconds():.0f} s old"
            if host is not None and host.heartbeat_at else "no heartbeat")
    return None, f"no core for {gone:.0f} s: {row.holder} holds it, {beat}"


def busy_seconds(app: Any, kind: str = "core") -> float | None:
    """How long the run of ``kind`` in progress has been busy (None: not running)."""
    runs = app.extensions.get("hc_runs")
    since = runs.started.get(kind) if runs is not None else None
    return None if since is None else time.monotonic() - since

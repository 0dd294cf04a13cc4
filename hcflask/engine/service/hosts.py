"""Hosts: one ``hc serve`` per ``host_name``, a heartbeat lease, and what
happens when a host stops answering.

Each service claims its ``host_name`` in the ``host`` table and renews the
lease from its scheduler (the ``host`` tick).  The claim is a
compare-and-set, so two services with the same name never both hold it: the
second one is refused with a message that says who holds it.  A lease held
by a service of *this* machine whose master process is gone is stale at
once (a kill -9 and a quick restart need not wait for the lease).

The core watches the others: a host whose lease ran out while it drives
running tests raises a ``host`` alert; after ``[hosts] adopt_after`` seconds
(0: never) the core's host adopts its tests, and with them their in-flight
jobs, which are looked up by name through the crash-reconcile path, so no
job is submitted twice.

Every time here is the database's (:mod:`hcflask.engine.service.clock`), so hosts
with skewed clocks agree on whose lease ran out.  Adoption bumps each
test's epoch and every in-flight job's version: the old host's late writes
match no row (:mod:`hcflask.engine.jobs.fence`).
"""
from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, or_, select, update

from hcflask.engine import notify
from hcflask.engine.common import log, my_host
from hcflask.engine.robot.alerts import close_alert, find_open, open_alerts, raise_alert
from hcflask.engine.service import clock
from hcflask.extensions import db
from hcflask.models import BackendHealth, Conflict, Host, Job, Test, ValidationError
from hcflask.states import IN_FLIGHT_JOB_STATES, TestState

ACTIVE = [TestState.SCHEDULED.value, TestState.RUNNING.value]


class HostTaken(RuntimeError):
    """Another live service holds this ``host_name``."""


def new_service_id() -> str:
    """``<machine>:<master pid>:<random>``: shared by the workers of one service."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def service_id() -> str:
    return str(current_app.config["SERVICE_ID"])


def stale_here(service: str) -> bool:
    """The service ``service`` ran on this machine and its master process is gone."""
    node, _, rest = service.partition(":")
    pid_text = rest.partition(":")[0]
    if node != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim(core: bool = False) -> Host:
    """Take or renew this service's lease on ``host_name``; HostTaken if another holds it."""
    name, me = my_host(), service_id()
    now, skew = clock.offset()
    until = now + timedelta(seconds=float(current_app.config["HOSTS_LEASE_SECONDS"]))
    row = db.session.get(Host, name)
    if row is None:
        row = Host(name=name, service_id=me, pid=os.getpid(), started_at=now, heartbeat_at=now,
                   lease_until=until, core=core, clock_offset=skew)
        db.session.add(row)
        db.session.commit()
        return row
    if row.service_id != me and row.live(now) and not stale_here(row.service_id):
        age = (now - row.heartbeat_at).total_seconds() if row.heartbeat_at else 0
        raise HostTaken(
            f"host_name {name!r} is held by another hc serve ({row.service_id}, heartbeat {age:.0f} s ago, "
            f"lease until {row.lease_until:%H:%M:%S} UTC): stop it, or give this one another host_name "
            "(HC_HOST_NAME)")
    values: dict[str, Any] = {"heartbeat_at": now, "lease_until": until, "core": core, "pid": os.getpid(),
                              "clock_offset": skew}
    if row.service_id != me:
        values.update(service_id=me, started_at=now)
    done = db.session.execute(update(Host).where(
        Host.name == name, Host.service_id == row.service_id, Host.heartbeat_at == row.heartbeat_at,
    ).values(**values))
    db.session.commit()
    if not done.rowcount:  # type: ignore[attr-defined]
        raise HostTaken(f"host_name {name!r} was taken by another hc serve just now")
    db.session.refresh(row)
    return row


def check_host(host: Any) -> str:
    """A host name a test may be assigned to: a known host, or this one."""
    if not isinstance(host, str) or not host.strip(" \t\r\n") or len(host) > 255:
        raise ValidationError("host", "must be a host name (the host_name of a hcflask service)")
    if host != my_host() and db.session.get(Host, host) is None:
        known = ", ".join(db.session.scalars(select(Host.name).order_by(Host.name))) or "none"
        raise Conflict("host", f"unknown host {host!r} (known: {known})")
    return host


def watch_hosts(now: datetime | None = None) -> dict[str, int]:
    """The core's look at the other hosts: alert on dead ones, adopt after ``adopt_after``."""
    now = now or clock.db_now()
    adopt_after = float(current_app.config["HOSTS_ADOPT_AFTER"])
    counts = {"dead_hosts": 0, "adopted_tests": 0}
    dead = set()
    for host in db.session.scalars(select(Host).where(Host.name != my_host(), Host.lease_until <= now)):
        tests = _driven_by(host.name)
        if not tests:
            continue
        dead.add(host.name)
        counts["dead_hosts"] += 1
        alert, event = raise_alert(
            "host", f"host:{host.name}", f"host {host.name} is not answering",
            f"its lease ran out at {host.lease_until:%Y-%m-%d %H:%M:%S} UTC; it drives {len(tests)} tests "
            f"({', '.join(str(t.id) for t in tests[:10])})")
        if event is not None:
            log.error("host %s stopped answering (lease until %s); it drives %d tests",
                      host.name, host.lease_until, len(tests))
            notify.enqueue(event, notify.event_data(event, title=alert.title, kind="host"))
        if adopt_after and host.lease_until and now - host.lease_until >= timedelta(seconds=adopt_after):
            counts["adopted_tests"] += adopt(host.name, tests, now)
    for alert in open_alerts("host"):
        if alert.key.removeprefix("host:") not in dead:
            event = close_alert(alert, "the host answers again, or its tests have a live host")
            notify.enqueue(event, notify.event_data(event, title=alert.title, kind="host"))
    db.session.commit()
    return counts


def _driven_by(name: str) -> list[Test]:
    """Tests ``name`` drives: scheduled or running, or ended with jobs still in flight."""
    in_flight = select(Job.test_id).where(Job.state.in_([s.value for s in IN_FLIGHT_JOB_STATES]))
    return list(db.session.scalars(select(Test).where(
        Test.host == name, or_(Test.state.in_(ACTIVE), Test.id.in_(in_flight)),
    ).order_by(Test.id)))


def adopt(name: str, tests: list[Test], now: datetime) -> int:
    """This host takes over ``tests`` of the dead host ``name`` (committed by the caller)."""
    me = my_host()
    taken = [t for t in tests if take_over(t, me, now, f"adopted by {me} from {name} (lease ran out)")]
    db.session.execute(delete(BackendHealth).where(BackendHealth.host == name))
    alert = find_open(f"host:{name}")
    if alert is not None:
        alert.note(f"{me} adopted {len(taken)} tests")
    log.warning("adopted %d tests of dead host %s: %s", len(taken), name, [t.id for t in taken])
    return len(taken)


def take_over(test: Test, host: str, now: datetime, note: str) -> bool:
    """Give ``test`` to ``host`` under a new epoch (a compare-and-set on the epoch read), and
    bump the version of each of its jobs in flight, so whatever the previous host still holds
    in memory is refused at its next write.  False if the test changed hands meanwhile."""
    done = db.session.execute(update(Test).where(Test.id == test.id, Test.epoch == test.epoch).values(
        host=host, epoch=Test.epoch + 1, epoch_at=now,
        note=(test.note + "; " if test.note else "") + note).execution_options(synchronize_session=False))
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    db.session.execute(update(Job).where(
        Job.test_id == test.id, Job.state.in_([s.value for s in IN_FLIGHT_JOB_STATES]),
    ).values(version=Job.version + 1).execution_options(synchronize_session=False))
    db.session.refresh(test)
    return True


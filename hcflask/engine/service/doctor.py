"""``hc doctor``: what an operator checks by hand, one line per check.

Each check returns :class:`Check` lines; a line is ``ok``, ``warn`` (worth a
look, not wrong) or ``FAIL`` (something is wrong: the command exits 1).
Everything is read from the database and aged by the database's clock, so
the answer is the same on any host of the instance.  Nothing is written.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import func, select

from hcflask.engine.common import backend
from hcflask.engine.service import corelease
from hcflask.engine.service.clock import db_now, skew_problem
from hcflask.engine.service.diskguard import low_filesystems
from hcflask.extensions import db
from hcflask.models import CoreLease, Delivery, Host, Job, Queue, Test, TickRun
from hcflask.states import JobState, QueueStatus

#: ticks every scheduler runs, and those only the core runs (config key of their interval)
TICKS = {"submission": "SCHEDULER_SUBMISSION_SECONDS", "monitor": "SCHEDULER_MONITOR_SECONDS"}
CORE_TICKS = {"core": "SCHEDULER_CORE_SECONDS", "actions": "SCHEDULER_ACTIONS_SECONDS"}
#: a job pending (never submitted) this long, or an outbox entry overdue this long, is stuck
STUCK_PENDING = timedelta(hours=1)
OUTBOX_OVERDUE = timedelta(minutes=15)


@dataclasses.dataclass(frozen=True)
class Check:
    level: str  # "ok", "warn" or "FAIL"
    name: str
    text: str

    def __str__(self) -> str:
        return f"{self.level:<4} {self.name}: {self.text}"


def run() -> list[Check]:
    """Every check, in the order an operator would look."""
    now = db_now()
    out: list[Check] = []
    for check in CHECKS:
        try:
            out.extend(check(now))
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            db.session.rollback()
            out.append(Check("FAIL", check.__name__.removeprefix("_"), f"could not check: {exc}".splitlines()[0]))
    return out


def _schema(_now: datetime) -> Iterator[Check]:
    from hcflask import migrations  # Alembic's own answer here, not instance.at_newest_schema's reading

    heads = set(ScriptDirectory(migrations(current_app._get_current_object())).get_heads())  # type: ignore[attr-defined]
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        yield Check("ok", "schema", f"at {', '.join(sorted(current))} (the code's head)")
    else:
        yield Check("FAIL", "schema", f"database at {', '.join(sorted(current)) or 'nothing'}, the code expects "
                    f"{', '.join(sorted(heads))}: run 'hc db upgrade'")


def _lock(now: datetime) -> Iterator[Check]:
    holder, no_core = corelease.describe(now)
    if holder is not None:
        host = db.session.get(Host, holder)
        lease = db.session.get(CoreLease, corelease.ROW)
        yield Check("ok", "core lease", f"held by {holder} (pid {host.pid if host else '?'}, "
                    f"epoch {lease.epoch if lease else '?'})")
    else:
        yield Check("FAIL", "core lease", f"{no_core}: no test starts or ends, the robot does not run")


def _hosts(now: datetime) -> Iterator[Check]:
    driving = set(db.session.scalars(select(Test.host).where(Test.state == "running").distinct()))
    for host in db.session.scalars(select(Host).order_by(Host.name)):
        skew = skew_problem(host.name, host.clock_offset or 0.0)
        offset = f"clock {host.clock_offset or 0.0:+.1f} s off the database's"
        if host.live(now):
            yield Check("warn" if skew else "ok", f"host {host.name}", skew or f"lease live, {offset}")
        elif host.name in driving:
            yield Check("FAIL", f"host {host.name}", f"lease ran out at {host.lease_until:%Y-%m-%d %H:%M:%S} UTC "
                        "and it drives running tests")
        else:
            yield Check("ok", f"host {host.name}", "stopped (drives no running test)")


def _ticks(now: datetime) -> Iterator[Check]:
    stale = float(current_app.config["SCHEDULER_STALE_SECONDS"])
    live = {h.name: h for h in db.session.scalars(select(Host)) if h.live(now)}
    for run_ in db.session.scalars(select(TickRun).order_by(TickRun.host, TickRun.name)):
        host = live.get(run_.host)
        kinds = {**TICKS, **(CORE_TICKS if host is not None and host.core else {})}
        if host is None or run_.name not in kinds or run_.finished_at is None:
            continue
        age = (now - run_.finished_at).total_seconds()
        limit = max(stale, 3 * float(current_app.config[kinds[run_.name]]))
        level = "FAIL" if age > limit else "warn" if run_.error else "ok"
        detail = f"; last error: {run_.error}" if run_.error else ""
        yield Check(level, f"tick {run_.host}/{run_.name}", f"last finished {age:.0f} s ago (limit {limit:.0f} s)"
                    + detail)


def _stuck_jobs(now: datetime) -> Iterator[Check]:
    stuck = []
    running = db.session.execute(select(Job.id, Job.started_at, Test.snapshot).join(Test).where(
        Job.state == JobState.RUNNING.value, Job.started_at.is_not(None)))
    for job_id, started, snapshot in running:
        walltime = float(((snapshot.get("workload") or {}).get("resources") or {}).get("walltime", 0) or 0)
        if walltime and now - started > timedelta(seconds=2 * walltime + 600):
            stuck.append(job_id)
    pending = db.session.scalar(select(func.count()).where(
        Job.state == JobState.PENDING.value, Job.created_at < now - STUCK_PENDING)) or 0
    if stuck or pending:
        yield Check("FAIL", "stuck jobs", f"{len(stuck)} running far past their walltime (jobs "
                    f"{', '.join(map(str, stuck[:10]))}), {pending} pending for over an hour")
    else:
        yield Check("ok", "stuck jobs", "none running far past its walltime or pending for over an hour")


def _outbox(now: datetime) -> Iterator[Check]:
    waiting = db.session.scalar(select(func.count()).where(Delivery.state == "pending")) or 0
    overdue = db.session.scalar(select(func.count()).where(
        Delivery.state == "pending", Delivery.next_attempt_at < now - OUTBOX_OVERDUE)) or 0
    level = "FAIL" if overdue else "ok"
    yield Check(level, "outbox", f"{waiting} actions waiting, {overdue} overdue by more than 15 min")


def _disk(_now: datetime) -> Iterator[Check]:
    low = low_filesystems()
    yield Check("FAIL" if low else "ok", "disk", "; ".join(low) or "enough free space for the instance and job dirs")


def _backends(_now: datetime) -> Iterator[Check]:
    names = sorted(set(db.session.scalars(select(Queue.backend).where(
        Queue.status != QueueStatus.OFFLINE.value).distinct())))
    for name in names:
        try:
            backend(name).discover_queues()
        except Exception as exc:  # noqa: BLE001 - any failure is "not reachable", with its words
            yield Check("FAIL", f"backend {name}", f"not reachable from this host: {exc}".splitlines()[0])
        else:
            yield Check("ok", f"backend {name}", "reachable from this host")


CHECKS: list[Callable[[datetime], Iterator[Check]]] = [
    _schema, _lock, _hosts, _ticks, _stuck_jobs, _outbox, _disk, _backends]

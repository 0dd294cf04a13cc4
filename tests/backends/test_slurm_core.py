"""The core host pauses: two real ``hc serve`` hosts on one real PostgreSQL and
one real Slurm cluster; node-b is started first and holds the core role, and
drives a test.  Its whole process group is stopped (SIGSTOP) for longer than
the lease plus ``adopt_after``: its database sessions stay open, idle, as
they would for a frozen VM.

Within the lease and a tick node-a takes the core role (a compare-and-set on
the core lease that bumps its epoch, and the paused host's sessions ended),
raises the ``core`` alert naming node-b, runs robot passes and adopts node-b's
test.  node-a's /healthz answers 503 ("no core for ...") only between the
lease's expiry and the takeover.  Then node-b is continued: it writes nothing
as core, logs once that it was fenced, every Slurm job belongs to one job row
and the rollups equal the rows.
"""
from __future__ import annotations

import collections
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from slurm_cluster import SlurmCluster
from sqlalchemy import select

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Alert, CoreLease, JobEvent, RobotState, RollupTest, Test, TickRun
from tests.backends.test_slurm_hosts import ADOPT_AFTER, FINAL, LEASE, _count, _instance, _row_host, _rows, _slurm_jobs
from tests.conftest import make_app
from tests.factories import make_queue, make_template
from tests.service import Relay, Served

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _lease(app: Any) -> tuple[str, int]:
    with app.app_context():
        db.session.expire_all()
        row = db.session.get(CoreLease, 1)
        return (row.holder, row.epoch) if row else ("", 0)


def _robot_ran_at(app: Any) -> Any:
    with app.app_context():
        db.session.expire_all()
        state = db.session.scalars(select(RobotState)).first()
        return state.last_run_at if state else None


class Watch:
    """/healthz of a host, every 0.1 s, with the time (monotonic) of each answer."""

    def __init__(self, served: Served) -> None:
        self.served, self.answers = served, []  # type: list[tuple[float, int, list[str]]]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                code, body = self.served.health()
            except requests.RequestException as exc:  # no answer within 5 s: a sample that says so
                code, body = 0, {"reasons": [str(exc)]}
            self.answers.append((time.monotonic(), code, list(body.get("reasons", []))))
            time.sleep(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


@pytest.mark.parametrize("cut", ["sigstop", "relay"])
def test_a_paused_core_loses_the_role_within_a_lease(
        slurm: SlurmCluster, postgres: Any, tmp_path: Path, cut: str) -> None:
    """``sigstop``: node-b's process group is stopped.  ``relay``: node-b runs on, but its
    database connections go through a relay that stops forwarding (a network cut that
    leaves the sessions open)."""
    url = postgres.create_database()
    relay = Relay(postgres.socket, Path(tempfile.mkdtemp(prefix="hc-relay-"))) if cut == "relay" else None
    url_b = url.replace(f"host={postgres.socket}", f"host={relay.folder}") if relay else url
    shared = tmp_path / "shared" / "jobs"
    a_dir = _instance(tmp_path, "node-a", url, shared, slurm, name=f"core{cut}")
    b_dir = _instance(tmp_path, "node-b", url_b, shared, slurm, name=f"core{cut}")
    app = make_app(a_dir, DATABASE_URL=url, HOST_NAME="node-a",
                   BACKENDS={"local": {}, "slurm": {"slurm_conf": str(slurm.conf)}, "panda": {}})
    env = {"SLURM_CONF": str(slurm.conf)}
    a, b = Served(a_dir, workers=1, env=env), Served(b_dir, workers=1, env=env)
    watch = None
    try:
        b.start()
        b.wait(lambda: b.health()[1].get("core_host") == "node-b", "node-b the core")
        a.start()
        a.wait(lambda: a.health()[1].get("hosts", {}).get("node-a", {}).get("live"), "node-a's lease")
        assert _lease(app) == ("node-b", 1)
        with app.app_context():
            make_queue("sq", "slurm", partition="debug")
            template = make_template("t", queues=["sq"], jobs_in_flight=3, script='sleep 4; echo "hc-ok value=1"')
            on_b = actions.start_test(template, actor="tests", host="node-b").id
        b.wait(lambda: _count(app, on_b, ("succeeded",)) >= 1 and _count(app, on_b, ("running", "queued")) >= 1,
               "node-b judging its jobs, with some in flight", timeout=120)
        a.wait(lambda: a.health()[0] == 200, "node-a healthy before the pause", timeout=30)
        watch = Watch(a)
        before = _robot_ran_at(app)
        if relay is not None:
            relay.pause()
        else:
            os.killpg(b.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        a.wait(lambda: _lease(app) == ("node-a", 2), "node-a taking the core role", timeout=LEASE + 30)
        took = time.monotonic() - stopped
        a.wait(lambda: (_robot_ran_at(app) or before) != before, "a robot pass on node-a", timeout=30)
        first_pass = time.monotonic() - stopped
        with app.app_context():
            alert = db.session.scalars(select(Alert).where(Alert.kind == "core")).one()
            assert alert.title == "core host node-b stopped answering" and alert.closed_at is None
            assert "node-a took the core role (epoch 2)" in alert.message and "heartbeat is" in alert.message
        a.wait(lambda: _row_host(app, on_b) == "node-a", "node-a adopting node-b's test", timeout=ADOPT_AFTER + 60)
        adopted = time.monotonic() - stopped
        a.wait(lambda: a.health()[0] == 200, "node-a healthy as the core", timeout=30)
        time.sleep(1)
        if relay is not None:
            relay.resume()
        else:
            os.killpg(b.pid, signal.SIGCONT)
        paused = time.monotonic() - stopped
        b.wait(lambda: "fenced: this host (node-b) lost the core role it held at epoch 1" in b.text(),
               "node-b logging that it was fenced", timeout=60)
        b.wait(lambda: b.health()[1].get("hosts", {}).get("node-b", {}).get("live"), "node-b live again")
        time.sleep(3)  # node-b's late core writes would land now
        assert _lease(app) == ("node-a", 2), "node-b took the role back"
        with app.app_context():
            core_runs = {r.host: r for r in db.session.scalars(select(TickRun).where(TickRun.name == "core"))}
            db.session.expire_all()
            closed = db.session.scalars(select(Alert).where(Alert.kind == "core")).one().closed_at
        assert closed is not None, "the core alert stays open although node-b answers again"
        assert b.text().count("lost the core role") == 1
        watch.stop()
        with app.app_context():
            actions.cancel_test(db.session.get_one(Test, on_b), actor="tests")
        a.wait(lambda: all(j.state in FINAL for j in _rows(app)), "every job final", timeout=120)
        rows = _rows(app)
        in_slurm = _slurm_jobs(slurm, f"hc-core{cut}-")
        names = collections.Counter(name for _, name in in_slurm)
        assert [n for n, k in names.items() if k > 1] == [], "a job was submitted twice"
        owners = collections.Counter(j.backend_id for j in rows if j.backend_id)
        assert max(owners.values()) == 1, "a Slurm job id on two rows"
        assert {job_id for job_id, _ in in_slurm} == set(owners), "a Slurm job without exactly one row"
        with app.app_context():
            events = collections.Counter((e.job_id, e.new_state) for e in db.session.scalars(select(JobEvent)))
            per_test = {(r.test_id, s): getattr(r, s) for r in db.session.scalars(select(RollupTest)) for s in FINAL}
        assert all(sum(events[(j.id, s)] for s in FINAL) == 1 for j in rows), "a job judged twice"
        by_state = collections.Counter((j.test_id, j.state) for j in rows)
        for state in FINAL:
            assert per_test.get((on_b, state), 0) == by_state[(on_b, state)], state
        # /healthz of node-a: 503 only while no live host held the core lease, and saying why
        answers = [(t - stopped, code, reasons) for t, code, reasons in watch.answers if t >= stopped]
        failing = [(t, reasons) for t, code, reasons in answers if code == 503]
        assert all(any(r.startswith("no core for ") and "node-b holds it, heartbeat" in r for r in reasons)
                   for _, reasons in failing), failing
        assert all(LEASE - 1.5 <= t <= took + 0.5 for t, _ in failing), (failing, took)
        assert [code for t, code, _ in answers if t < LEASE - 1.5 or t > took + 0.5] == \
            [200] * len([t for t, _, _ in answers if t < LEASE - 1.5 or t > took + 0.5])
        assert took <= LEASE + 1 + 2, f"takeover {took:.1f} s after the pause (lease {LEASE} s, 1 s ticks)"
        assert "node-a" in core_runs
        how = "SIGSTOP" if relay is None else "database cut (relay paused)"
        print(f"\n{how} of core node-b for {paused:.1f} s (lease {LEASE} s, adopt_after {ADOPT_AFTER} s, 1 s ticks): "
              f"node-a core after {took:.1f} s, first robot pass after {first_pass:.1f} s, node-b's test adopted "
              f"after {adopted:.1f} s; node-a /healthz: {len(answers)} answers, {len(failing)} x 503 between "
              f"{min((t for t, _ in failing), default=0):.1f} s and {max((t for t, _ in failing), default=0):.1f} s "
              f"({failing[0][1] if failing else 'none'}), the rest 200; node-b logged 1 fencing; "
              f"{len(rows)} rows = {len(in_slurm)} Slurm jobs, rollups = rows")
    finally:
        if watch is not None:
            watch.stop()
        if relay is not None:
            relay.resume()
        for served in (a, b):
            if served.process is not None and served.process.poll() is None:
                os.killpg(served.pid, signal.SIGCONT)
            served.stop()
        with app.app_context():
            db.engine.dispose()
        if relay is not None:
            relay.close()
            shutil.rmtree(relay.folder, ignore_errors=True)


"""Two hosts on one real PostgreSQL, each a real ``hc serve``: kill -9 of one.

The other notices within the lease (a ``host`` alert), adopts the dead
host's test after ``adopt_after``, and judges every job once; no job is
submitted twice.  Job work dirs are on one shared folder (``[paths] jobs``),
as they would be on a cluster filesystem; the local jobs of the killed host
live on in their own sessions, as Slurm jobs would.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Alert, CoreLease, Host, Job, JobEvent, RobotState, Test, TickRun
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template
from tests.service import Served, write_config

LEASE, ADOPT_AFTER = 4, 6
FINAL = ["succeeded", "failed", "cancelled", "lost"]


def _instance(base: Path, host: str, url: str, shared: Path) -> Path:
    instance = base / host
    write_config(instance, host_name=host, lease=LEASE, adopt_after=ADOPT_AFTER, instance_name="scale",
                 extra_top=f'database_url = "{url}"', extra=f'[paths]\njobs = "{shared}"\n')
    return instance


def _count(app: Flask, test_id: int, states: list[str]) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).where(Job.test_id == test_id, Job.state.in_(states))) or 0)


def _row(app: Flask, model: Any, **where: Any) -> Any:
    with app.app_context():
        db.session.expire_all()
        query = select(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return db.session.scalar(query)


@pytest.mark.slow
def test_kill_9_of_a_host_alert_adoption_and_every_job_judged_once(postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database()
    shared = tmp_path / "shared" / "jobs"
    a_dir, b_dir = (_instance(tmp_path, h, url, shared) for h in ("node-a", "node-b"))
    app = make_app(a_dir, DATABASE_URL=url, HOST_NAME="node-a")
    a, b = Served(a_dir, workers=1), Served(b_dir, workers=1)
    try:
        a.start()
        a.wait(lambda: _row(app, Host, name="node-a"), "node-a's lease")
        b.start()
        b.wait(lambda: _row(app, Host, name="node-b"), "node-b's lease")
        with app.app_context():
            make_queue("q1")
            template = make_template("t", jobs_in_flight=2, script='sleep 2; echo "hc-ok value=1"')
            on_a = actions.start_test(template, actor="tests", host="node-a").id
            on_b = actions.start_test(db.session.merge(template), actor="tests", host="node-b").id
        a.wait(lambda: _count(app, on_a, ["succeeded"]) >= 2 and _count(app, on_a, ["running"]) >= 1,
               "node-a judging its jobs, with some running")
        a.kill9()
        alert = b.wait(lambda: _row(app, Alert, key="host:node-a"), "a host alert on node-b", timeout=LEASE + 20)
        assert alert.kind == "host" and "lease ran out" in alert.message
        lease_until = _row(app, Host, name="node-a").lease_until
        assert alert.opened_at >= lease_until
        b.wait(lambda: _row(app, Test, id=on_a).host == "node-b", "node-b adopting node-a's test",
               timeout=LEASE + ADOPT_AFTER + 20)
        adopted = _row(app, Alert, key="host:node-a")
        when = datetime.fromisoformat(adopted.timeline[-1]["time"].removesuffix("Z"))
        assert "node-b adopted 1 tests" in adopted.timeline[-1]["text"]
        assert when >= lease_until.replace(microsecond=0) + timedelta(seconds=ADOPT_AFTER)
        judged = _count(app, on_a, ["succeeded"])
        b.wait(lambda: _count(app, on_a, ["succeeded"]) >= judged + 2, "node-b judging the adopted test's jobs")
        with app.app_context():
            for test_id in (on_a, on_b):
                actions.cancel_test(db.session.get_one(Test, test_id), actor="tests")
        b.wait(lambda: _count(app, on_a, FINAL) == _count(app, on_a, FINAL + ["pending", "submitted", "queued",
                                                                                "running"]),
               "every job of the adopted test final")
        with app.app_context():
            jobs = db.session.scalars(select(Job).where(Job.test_id == on_a)).all()
            assert len({j.name for j in jobs}) == len(jobs)
            backend_ids = [j.backend_id for j in jobs if j.backend_id]
            assert len(set(backend_ids)) == len(backend_ids)
            events = Counter((e.job_id, e.new_state) for e in db.session.scalars(
                select(JobEvent).join(Job).where(Job.test_id == on_a)))
            assert all(events[(j.id, "submitted")] <= 1 for j in jobs), "a job submitted twice"
            judged_twice = [job_id for job_id in {j.id for j in jobs}
                            if sum(events[(job_id, s)] for s in FINAL) > 1]
            assert judged_twice == []
    finally:
        a.stop()
        b.stop()
        kill_local_jobs(shared.parent)
        with app.app_context():
            db.engine.dispose()


def test_init_on_postgresql_seeds_no_demo_and_leaves_no_sqlite(postgres: Any, tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.service import hc

    for flag, expected in (([], ""), (["--demo"], "demo")):
        url = postgres.create_database()
        instance = tmp_path / f"inst{len(flag)}"
        env = {**os.environ, "HC_INSTANCE": str(instance), "HC_DATABASE_URL": url}
        done = subprocess.run([*hc(), "init", *flag], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert not (instance / "hc.sqlite").exists()
        env.pop("HC_DATABASE_URL")  # from now on hc.toml says where the database is
        assert f'database_url = "{url}"' in (instance / "hc.toml").read_text()
        listed = subprocess.run([*hc(), "template", "list"], env=env, capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0 and ("demo" in listed.stdout) == bool(expected), listed.stdout
        assert not (instance / "hc.sqlite").exists()


@pytest.mark.slow
def test_a_slow_core_loses_the_role_and_writes_nothing_under_its_old_epoch(postgres: Any, tmp_path: Path) -> None:
    """node-b is the core and only slow: its core tick waits on a table lock the test holds
    (``LOCK TABLE robot_state``, a real way for a robot pass to hang) for longer than the
    lease.  Its heartbeat stops renewing the core lease while the tick is stuck, node-a takes
    the role, and when the lock goes node-b's pass finishes but its commit is refused."""
    import psycopg
    from sqlalchemy import make_url

    url = postgres.create_database()
    shared = tmp_path / "shared" / "jobs"
    a_dir, b_dir = (_instance(tmp_path, h, url, shared) for h in ("node-a", "node-b"))
    app = make_app(a_dir, DATABASE_URL=url, HOST_NAME="node-a")
    a, b = Served(a_dir, workers=1), Served(b_dir, workers=1)
    try:
        b.start()
        b.wait(lambda: b.health()[1].get("core_host") == "node-b", "node-b the core")
        b.wait(lambda: _row(app, RobotState) is not None, "a robot pass on node-b")
        a.start()
        a.wait(lambda: _row(app, Host, name="node-a"), "node-a's lease")
        with psycopg.connect(f"host={postgres.socket} user=postgres dbname={make_url(url).database}") as conn:
            conn.execute("LOCK TABLE robot_state IN ACCESS EXCLUSIVE MODE")
            locked = time.monotonic()
            a.wait(lambda: (_row(app, CoreLease).holder, _row(app, CoreLease).epoch) == ("node-a", 2),
                   "node-a taking the core role", timeout=3 * LEASE + 30)
            took = time.monotonic() - locked
            assert "core tick busy for" in b.text() and "longer than the core lease (4 s)" in b.text()
            conn.rollback()
        fenced = ("fenced: this host (node-b) lost the core role it held at epoch 1 "
                  "(node-a took the core role at epoch 2)")
        b.wait(lambda: fenced in b.text(), "node-b's stuck pass refused at its commit")
        a.wait(lambda: _row(app, TickRun, host="node-a", name="core") is not None, "a core tick on node-a")
        time.sleep(2)
        lease = _row(app, CoreLease)
        assert (lease.holder, lease.epoch) == ("node-a", 2), "node-b took the role back"
        assert b.text().count("lost the core role") == 1
        assert "core tick failed" not in b.text()
        print(f"\nnode-b's core tick stuck on a table lock: node-a core after {took:.1f} s (lease {LEASE} s); "
              "node-b's pass refused at its commit, logged once")
    finally:
        a.stop()
        b.stop()
        with app.app_context():
            db.engine.dispose()

"""Two real ``hc serve`` hosts on one real PostgreSQL, each driving a test on
the same real Slurm cluster; host B is paused (SIGSTOP of its whole process
group, squeue included) in the middle of its monitor tick, for longer than
``adopt_after``.  Host A adopts B's test; then B is continued (SIGCONT) and
wakes up with the jobs it had loaded.  Its late writes are fenced: every
Slurm job belongs to exactly one job row, the rollups equal the rows by final
state, no job was submitted twice (a copy that B's frozen sbatch made after A submitted
the job is B's fenced submission, and must be cancelled), and B logs that it was fenced.

B's ``squeue`` is a wrapper around the real one that, while a flag file
exists, says it started and waits a second: the barrier that lets the test
stop B exactly inside the poll of its monitor tick.
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from slurm_cluster import SlurmCluster
from sqlalchemy import func, select

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Job, JobEvent, RollupTest, Test
from tests.conftest import make_app
from tests.factories import make_queue, make_template
from tests.service import Served, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

LEASE, ADOPT_AFTER = 4, 6
FINAL = ("succeeded", "failed", "cancelled", "lost")
SQUEUE = """#!/bin/bash
# the monitor's poll (squeue -j): when asked to, say so and wait, so the test can stop us here
if [ -e "{flag}" ] && [[ " $* " == *" -j "* ]]; then touch "{inside}"; sleep 1; fi
exec {real} "$@"
"""


def _instance(base: Path, host: str, url: str, shared: Path, slurm: SlurmCluster, squeue: str = "",
              name: str = "fence") -> Path:
    """A host's instance folder; ``name`` (the job name prefix hc-<name>-) is unique per test, since
    Slurm keeps every job of the session's cluster in ``squeue -t all`` for MinJobAge."""
    instance = base / host
    extra = (f'[paths]\njobs = "{shared}"\n\n[backends.slurm]\nslurm_conf = "{slurm.conf}"\n'
             "command_timeout = 20\nretry_delay = 0.2\n" + (f'squeue = "{squeue}"\n' if squeue else ""))
    write_config(instance, host_name=host, lease=LEASE, adopt_after=ADOPT_AFTER, instance_name=name,
                 extra_top=f'database_url = "{url}"', extra=extra)
    return instance


def _rows(app: Any) -> list[Job]:
    with app.app_context():
        db.session.expire_all()
        rows = list(db.session.scalars(select(Job).order_by(Job.id)))
        db.session.expunge_all()
        return rows


def _count(app: Any, test_id: int, states: tuple[str, ...]) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).where(Job.test_id == test_id, Job.state.in_(states))) or 0)


def _slurm_jobs(slurm: SlurmCluster, prefix: str, states: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(id, name) of every job Slurm saw under our names (plain cluster: squeue -t all);
    ``states`` gets each one's Slurm state."""
    seen = set()
    for line in slurm.run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T").stdout.splitlines():
        job_id, name, state = (line.split("|") + ["", ""])[:3]
        if name.startswith(prefix):
            seen.add((job_id, name))
            if states is not None:
                states[job_id] = state
    return sorted(seen)


def test_a_paused_host_wakes_up_fenced(slurm: SlurmCluster, postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database()
    shared = tmp_path / "shared" / "jobs"
    flag, inside = tmp_path / "stop-in-poll", tmp_path / "in-poll"
    wrapper = tmp_path / "bin" / "squeue"
    wrapper.parent.mkdir()
    real = shutil.which("squeue")
    assert real
    wrapper.write_text(SQUEUE.format(flag=flag, inside=inside, real=real))
    wrapper.chmod(0o755)
    a_dir = _instance(tmp_path, "node-a", url, shared, slurm)
    b_dir = _instance(tmp_path, "node-b", url, shared, slurm, squeue=str(wrapper))
    app = make_app(a_dir, DATABASE_URL=url, HOST_NAME="node-a",
                   BACKENDS={"local": {}, "slurm": {"slurm_conf": str(slurm.conf)}, "panda": {}})
    env = {"SLURM_CONF": str(slurm.conf)}
    a, b = Served(a_dir, workers=1, env=env), Served(b_dir, workers=1, env=env)
    try:
        a.start()
        a.wait(lambda: a.health()[1].get("core_host") == "node-a", "node-a the core")
        b.start()
        b.wait(lambda: "node-b" in b.health()[1].get("hosts", {}), "node-b's lease")
        with app.app_context():
            make_queue("sq", "slurm", partition="debug")
            template = make_template("t", queues=["sq"], jobs_in_flight=3, script='sleep 4; echo "hc-ok value=1"')
            on_a = actions.start_test(template, actor="tests", host="node-a").id
            on_b = actions.start_test(db.session.merge(template), actor="tests", host="node-b").id
        b.wait(lambda: _count(app, on_b, ("succeeded",)) >= 2 and _count(app, on_b, ("running", "queued")) >= 1,
               "node-b judging its jobs, with some in flight", timeout=120)
        flag.touch()
        b.wait(inside.exists, "node-b inside the poll of its monitor tick")
        os.killpg(b.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        held = {j.id for j in _rows(app) if j.test_id == on_b and j.state not in FINAL}
        flag.unlink()
        a.wait(lambda: _count(app, on_b, FINAL) >= len(held) + 2 + 2 and
               _row_host(app, on_b) == "node-a", "node-a adopting node-b's test and judging its jobs",
               timeout=LEASE + ADOPT_AFTER + 90)
        os.killpg(b.pid, signal.SIGCONT)
        paused = time.monotonic() - stopped
        message = re.compile(rf"fenced: tests {on_b} adopted by node-a at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
        b.wait(lambda: message.search(b.text()), "node-b logging that it was fenced", timeout=60)
        with app.app_context():
            for test_id in (on_a, on_b):
                actions.cancel_test(db.session.get_one(Test, test_id), actor="tests")
        a.wait(lambda: all(j.state in FINAL for j in _rows(app)), "every job final", timeout=120)
        time.sleep(3)  # a late write of node-b would land now
        rows = _rows(app)
        prefix = "hc-fence-"
        states: dict[str, str] = {}
        in_slurm = _slurm_jobs(slurm, prefix, states)
        owners = collections.Counter(j.backend_id for j in rows if j.backend_id)
        assert max(owners.values()) == 1, "a Slurm job id on two rows"
        # SIGSTOP can freeze node-b's own sbatch mid-call: node-a then proves the job absent and
        # submits it, and node-b's sbatch completes after SIGCONT.  That copy is node-b's fenced
        # submission: it must be cancelled (issue 20: "found by name and cancelled"), never on a row
        orphans = {job_id for job_id, _ in in_slurm} - set(owners)
        assert all(states[job_id] == "CANCELLED" for job_id in orphans), {o: states[o] for o in orphans}
        names = collections.Counter(name for job_id, name in in_slurm if job_id not in orphans)
        assert [n for n, k in names.items() if k > 1] == [], "a job was submitted twice"
        assert {job_id for job_id, _ in in_slurm} - orphans == set(owners), "a Slurm job without exactly one row"
        with app.app_context():
            events = collections.Counter((e.job_id, e.new_state) for e in db.session.scalars(select(JobEvent)))
            per_test = {(r.test_id, s): getattr(r, s) for r in db.session.scalars(select(RollupTest)) for s in FINAL}
        assert all(events[(j.id, "submitted")] <= 1 for j in rows), "a job submitted twice"
        assert all(sum(events[(j.id, s)] for s in FINAL) == 1 for j in rows), "a job judged twice"
        by_state = collections.Counter((j.test_id, j.state) for j in rows)
        for test_id in (on_a, on_b):
            for state in FINAL:
                assert per_test.get((test_id, state), 0) == by_state[(test_id, state)], (test_id, state)
        assert len(message.findall(b.text())) == 1, "fenced more than once for one adoption"
        print(f"\nSIGSTOP of node-b mid-poll for {paused:.1f} s (lease {LEASE} s, adopt_after {ADOPT_AFTER} s), "
              f"{len(held)} jobs in flight held by node-b; after: {len(rows)} rows, {len(in_slurm)} Slurm jobs, "
              f"{dict(collections.Counter(j.state for j in rows))}; "
              f"0 doubled, rollups = rows; node-b logged {len(message.findall(b.text()))} fencing")
    finally:
        for served in (a, b):
            if served.process is not None and served.process.poll() is None:
                os.killpg(served.pid, signal.SIGCONT)
            served.stop()
        with app.app_context():
            db.engine.dispose()


def _row_host(app: Any, test_id: int) -> str | None:
    with app.app_context():
        db.session.expire_all()
        return db.session.get_one(Test, test_id).host

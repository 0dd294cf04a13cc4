"""One clock: host B's clock 15 minutes ahead, then 15 minutes behind the
database's (libfaketime, Debian's ``faketime``, preloaded into B's real
``hc serve``), with host A on time, both on one real PostgreSQL.

Leases, heartbeats and adoption use the database's clock, so neither skew
raises a host alert or gets B's live test adopted; ``/healthz`` (on both
hosts) and ``hc doctor`` show B's offset.  Before, B's heartbeat was written
with its own clock and read with A's: 15 minutes behind, its lease looked run
out at once and its test was adopted after ``adopt_after``.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Alert, Job, Test
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template
from tests.service import Served, hc, write_config

#: short, yet a few ticks long: on a loaded CI machine (4 workers on 2 cores) a 3 s lease was once
#: missed by a CPU-starved node-b, which then was rightly adopted; the skew (15 minutes) dwarfs both
LEASE, ADOPT_AFTER = 5, 10
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@pytest.fixture
def faketime() -> Path:
    if not LIBFAKETIME.exists():
        if os.environ.get("CI"):
            pytest.fail("libfaketime needed in CI (.ci/install-faketime.sh)")
        pytest.skip("libfaketime is not installed (apt install faketime)")
    return LIBFAKETIME


#: libfaketime 0.9.10 (Debian 12) mistranslates the absolute CLOCK_MONOTONIC deadline of Python's
#: time.sleep (EINVAL) when the monotonic clock is left alone, and with it faked every
#: threading wait hangs; so B keeps the real monotonic clock and sleeps by a threading wait
#: (this file goes first on B's PYTHONPATH).  Only the wall clock is off, as on a badly synced host.
SITECUSTOMIZE = """import threading, time

def _sleep(seconds):
    if seconds > 0:
        threading.Event().wait(seconds)

time.sleep = _sleep
"""


def _skewed(offset: str, library: Path, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"LD_PRELOAD": str(library), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PYTHONPATH": path}


def _state(app: Any, test_id: int) -> tuple[int, str | None, int]:
    with app.app_context():
        db.session.expire_all()
        alerts = db.session.scalar(select(func.count()).select_from(Alert).where(
            Alert.kind == "host", Alert.closed_at.is_(None))) or 0
        host = db.session.get_one(Test, test_id).host
        judged = db.session.scalar(select(func.count()).where(Job.test_id == test_id, Job.state == "succeeded")) or 0
        return int(alerts), host, int(judged)


@pytest.mark.slow
def test_a_host_15_minutes_off_is_neither_alerted_nor_adopted(postgres: Any, tmp_path: Path, faketime: Path) -> None:
    url = postgres.create_database()
    shared = tmp_path / "shared" / "jobs"
    dirs = {}
    for host in ("node-a", "node-b"):
        dirs[host] = tmp_path / host
        write_config(dirs[host], host_name=host, lease=LEASE, adopt_after=ADOPT_AFTER, instance_name="skew",
                     extra_top=f'database_url = "{url}"', extra=f'[paths]\njobs = "{shared}"\n')
    app = make_app(dirs["node-a"], DATABASE_URL=url, HOST_NAME="node-a")
    a = Served(dirs["node-a"], workers=1)
    figures = []
    try:
        a.start()
        a.wait(lambda: a.health()[1].get("core_host") == "node-a", "node-a the core")
        test_id = None
        for offset, side in (("+15m", "ahead of"), ("-15m", "behind")):
            b = Served(dirs["node-b"], workers=1, env=_skewed(offset, faketime, tmp_path / "faketime"))
            try:
                b.start()
                b.wait(lambda b=b: (b.health()[1].get("hosts", {}).get("node-b") or {}).get("live"), "node-b live")
                if test_id is None:
                    with app.app_context():
                        make_queue("q1")
                        template = make_template("t", jobs_in_flight=2, script='sleep 1; echo "hc-ok value=1"')
                        test_id = actions.start_test(template, actor="tests", host="node-b").id
                _, _, judged = _state(app, test_id)
                b.wait(lambda t=test_id, n=judged: _state(app, t)[2] >= n + 2 and not _state(app, t)[0],
                       f"node-b ({offset}) judging jobs, no host alert open")
                deadline = time.monotonic() + LEASE + ADOPT_AFTER + 8  # past when a false adoption would come
                while time.monotonic() < deadline:
                    alerts, host, _ = _state(app, test_id)
                    assert alerts == 0, f"a false host alert with node-b {offset}"
                    assert host == "node-b", f"node-b's live test adopted with node-b {offset}"
                    time.sleep(0.5)
                for served in (a, b):
                    code, body = served.health()
                    offset_seen = body["hosts"]["node-b"]["clock_offset_seconds"]
                    assert abs(abs(offset_seen) - 900) < 5 and (offset_seen > 0) == (offset == "+15m"), body
                    assert any(f"clock of host node-b is {abs(offset_seen):.0f} s {side} the database's" in r
                               for r in body["reasons"]), body
                    assert code == 200 and body["status"] == "degraded", body
                doctor = subprocess.run([*hc(), "doctor"], env={**os.environ, "HC_INSTANCE": str(dirs["node-a"])},
                                        capture_output=True, text=True, timeout=120)
                line = next(x for x in doctor.stdout.splitlines() if "host node-b:" in x)
                assert line.startswith("warn") and f"s {side} the database's" in line, doctor.stdout
                figures.append(f"{offset}: offset seen {offset_seen:+.1f} s, 0 host alerts, test still on node-b, "
                               f"doctor: {line.strip()!r}")
            finally:  # kill -9, so the restart under the other offset is quick (a graceful stop waits)
                b.kill9()
        print("\n" + "\n".join(figures))
    finally:
        a.stop()
        kill_local_jobs(shared.parent)
        with app.app_context():
            db.engine.dispose()

"""Outage shapes that fooled the robot before failure signatures and the standing budget
(issue "No outage shape fools the robot"), each replayed afterwards: the replay must
reproduce the live decisions exactly.

Jobs are written through the monitor's own judge and writer by :mod:`tests.engine.history`;
the robot passes are the real ones at known times.  The admin-release race uses a second
real process whose clock runs 5 minutes ahead (libfaketime).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from hcflask.engine.robot.replay import replay
from hcflask.engine.robot.robot import robot_pass, set_enabled
from hcflask.extensions import db
from hcflask.models import QueueClaim, RobotEvent, RobotState, utcnow
from tests.conftest import make_app
from tests.engine.history import base_time, jobs, per_node, start
from tests.engine.test_outage import alerts, excluded, gradual, names
from tests.engine.test_replay import live_decisions, replayed
from tests.factories import make_queue, make_template, make_test
from tests.service import hc

CVMFS = per_node("cannot open /cvmfs/atlas.cern.ch/repo/sw")


@pytest.fixture
def ctx(app: Flask):
    with app.app_context():
        yield app


def same_as_replay(t0: datetime, end: datetime, step: timedelta) -> None:
    """The replay over the scenario's passes decides what the live passes decided."""
    live = live_decisions()
    assert replayed(replay(t0, end, step, {})) == live


def rolled_back() -> list[str]:
    return sorted(db.session.scalars(select(RobotEvent.queue).where(RobotEvent.kind == "rollback")))


def test_gradual_outage_with_a_different_text_on_every_job(ctx: Flask) -> None:
    """The gradual shape (2 more of 20 failing every 10 min) with the node, its address, the
    time and a pid in every failure: before signatures, 2, 4, 6, 5, 4, 3, 2 were excluded."""
    figures = gradual(ctx, text=CVMFS)
    per_pass = figures["excluded_per_pass"]
    assert max(per_pass) <= 2, per_pass  # type: ignore[call-overload]
    assert figures["alert_pass"] == 3 and len(alerts()) == 1
    assert "cannot open /cvmfs/atlas.cern.ch/repo/sw on <id> (<ip>) at <time> pid <n>" in alerts()[0].message
    assert excluded() == [] and rolled_back() == ["q00", "q01"]
    same_as_replay(figures["t0"], figures["end"], timedelta(minutes=10))  # type: ignore[arg-type]


@pytest.mark.slow
def test_slow_outage_is_caught_by_the_standing_budget(ctx: Flask) -> None:
    """30 queues, 2 more failing every 40 min for 11 h, a pass every 20 min: the guard window
    (1 h) never holds more than 8, so before the budget all 30 were excluded and no alert came."""
    queues = names(30)
    test = start(ctx, queues)
    t0 = base_time()
    step = timedelta(minutes=20)
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    failing: list[str] = []
    most, alert_at, excluded_before_alert = 0, None, []
    t = t0
    for k in range(34):  # 11 h
        t = t0 + k * step
        new = queues[len(failing):len(failing) + 2] if k % 2 == 0 else []
        jobs(test, [q for q in queues if q not in failing + new], True, t)
        jobs(test, failing, False, t, text=CVMFS)
        jobs(test, new, False, t, count=3, text=CVMFS)
        failing += new
        before = excluded()
        robot_pass(now=t)
        most = max(most, len(excluded()))
        if alert_at is None and alerts():
            alert_at, excluded_before_alert = t, before
    judged = RobotState.get().last_summary
    assert most <= 0.3 * 30, most
    assert len(alerts()) == 1 and alert_at is not None
    assert excluded_before_alert and rolled_back() == excluded_before_alert, "every same-signature claim"
    assert excluded() == [] and all(not row.get("held", "").startswith("would") for row in judged.values())
    minutes = (alert_at - t0).total_seconds() / 60
    assert minutes <= 200, f"the alert came {minutes:.0f} min after the first failures"
    same_as_replay(t0, t, step)


def test_two_independent_failures_with_varying_text_are_both_excluded(ctx: Flask) -> None:
    queues = names(20)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, ["q03"], False, t0, count=3, text=per_node("segfault in libCore.so"))
    jobs(test, ["q11"], False, t0, count=3, text=per_node("mount /scratch failed: stale file handle"))
    counts = robot_pass(now=t0)
    assert counts["excluded"] == 2 and excluded() == ["q03", "q11"] and alerts() == []
    t1 = t0 + timedelta(minutes=10)
    jobs(test, [q for q in queues if q not in ("q03", "q11")], True, t1)
    jobs(test, ["q03", "q11"], False, t1, text=per_node("segfault in libCore.so"))
    assert robot_pass(now=t1)["excluded"] == 0 and excluded() == ["q03", "q11"] and alerts() == []
    same_as_replay(t0, t1, timedelta(minutes=10))


def test_the_denominator_is_the_queues_a_driving_test_judges(ctx: Flask) -> None:
    """40 queues, a driving test over 10 of them, all 10 failing with one message: before, 10
    of 40 was under the share, and all 10 were excluded after the hold."""
    queues = names(40)
    for name in queues:
        make_queue(name)
    driving = make_test(make_template("t1", queues[:10], autoexclusion=True, lifetime=86400), ctx)
    other = make_test(make_template("t2", queues, autoexclusion=False, lifetime=86400), ctx)
    t0 = base_time()
    jobs(driving, queues[:10], True, t0 - timedelta(minutes=5), count=2)
    jobs(other, queues, True, t0 - timedelta(minutes=5), count=2)
    t = t0
    for k in range(8):
        t = t0 + k * timedelta(minutes=10)
        jobs(driving, queues[:10], False, t, count=3 if k == 0 else 1, text=CVMFS)
        counts = robot_pass(now=t)
        assert counts["judged"] == 10 and counts["outage"] == 1, counts
        assert excluded() == []
    assert len(alerts()) == 1 and "10 of 10 judged queues" in alerts()[0].message
    assert RobotState.get().last_summary["q20"]["reason"] == "not covered by a driving test"
    same_as_replay(t0, t, timedelta(minutes=10))


def flip(event: RobotEvent | None, at: datetime) -> None:
    """The switch's log entry placed between the scenario's passes (they run on a clock ahead
    of the wall clock), where the replay reads it."""
    assert event is not None
    event.time = at
    db.session.commit()


def test_switched_off_during_an_outage_nothing_moves_then_the_rollback_runs(ctx: Flask) -> None:
    queues = names(5)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, ["q00"], False, t0, count=3, text=CVMFS)
    robot_pass(now=t0)
    assert excluded() == ["q00"]
    flip(set_enabled(False, "alice", "maintenance"), t0 + timedelta(minutes=5))
    t1 = t0 + timedelta(minutes=10)
    jobs(test, ["q00"], False, t1, text=CVMFS)
    jobs(test, ["q01", "q02"], False, t1, count=3, text=CVMFS)
    counts = robot_pass(now=t1)
    assert counts["outage"] == 1 and counts["rolled_back"] == 0 and counts["excluded"] == 0
    assert excluded() == ["q00"] and len(alerts()) == 1
    assert "auto-exclusion is switched off: 1 exclusions not rolled back (q00)" in alerts()[0].message
    assert RobotState.get().last_summary["q00"]["held"].startswith("would be rolled back")
    flip(set_enabled(True, "alice"), t1 + timedelta(minutes=5))
    t2 = t1 + timedelta(minutes=10)
    jobs(test, queues[:3], False, t2, text=CVMFS)
    assert robot_pass(now=t2)["rolled_back"] == 1 and excluded() == [] and rolled_back() == ["q00"]
    same_as_replay(t0, t2, timedelta(minutes=10))  # the switch is taken from its log


@pytest.mark.skipif(not shutil.which("faketime"), reason="libfaketime (Debian faketime) not installed")
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_an_admin_release_from_a_host_whose_clock_runs_ahead_is_final(
        database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The pass takes its time before the release commits; the release comes from a second
    process (the web host) whose clock runs 5 minutes ahead.  Before: the release was not seen
    (``released_at > now``), the compare-and-set passed on the new version, and the queue was
    excluded again on the very jobs the admin dismissed."""
    overrides: dict[str, Any] = {}
    # only the wall clock runs ahead: timed waits on a faked monotonic clock would hang at exit
    env = {**os.environ, "HC_INSTANCE": str(tmp_path / "instance"), "DONT_FAKE_MONOTONIC": "1"}
    if database == "postgres":
        url = request.getfixturevalue("postgres").create_database()
        overrides["DATABASE_URL"] = env["HC_DATABASE_URL"] = url
    app = make_app(tmp_path / "instance", **overrides)
    with app.app_context():
        queues = names(5)
        test = start(app, queues)
        t0 = base_time()
        jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
        jobs(test, ["q00"], False, t0, count=3, text=CVMFS)
        robot_pass(now=t0)
        assert excluded() == ["q00"]
        pass_time = t0 + timedelta(seconds=30)  # taken before the release below commits
        done = subprocess.run(["faketime", "-f", "+5m", *hc(), "queue", "set-status", "q00", "online",
                               "--reason", "fixed the mount"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        db.session.expire_all()
        release = db.session.scalar(select(QueueClaim).where(QueueClaim.release_rule == "admin"))
        assert release is not None and excluded() == []
        if database == "postgres":  # stamped by the database's clock, not the web host's
            assert abs(release.released_at - utcnow()) < timedelta(minutes=1), release.released_at
        assert robot_pass(now=pass_time)["excluded"] == 0 and excluded() == []
        assert robot_pass()["excluded"] == 0 and excluded() == [], "a pass on the database's clock"
        db.session.remove()
        db.engine.dispose()

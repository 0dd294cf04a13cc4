"""The outage guard on scenarios of 5 to 20 queues (DESIGN.md "The robot").

Jobs are written through the monitor's own judge and writer by
:mod:`tests.engine.history` (not run: 20 queues x 14 passes of real jobs
would take minutes); the robot passes are the real ones, at known times.
"""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.config import DICT_SECTIONS
from hcflask.engine.notify import deliver
from hcflask.engine.robot.robot import robot_pass
from hcflask.extensions import db
from hcflask.models import Alert, Queue, QueueEvent, RobotEvent, RobotState
from tests.conftest import make_app
from tests.engine.history import Text, base_time, jobs, start

STEP = timedelta(minutes=10)


def excluded() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(Queue.name).where(Queue.status == "excluded").order_by(Queue.name)))


def alerts() -> list[Alert]:
    return list(db.session.scalars(select(Alert).where(Alert.kind == "outage").order_by(Alert.id)))


def names(n: int) -> list[str]:
    return [f"q{i:02d}" for i in range(n)]


@pytest.fixture
def ctx(app: Flask):
    with app.app_context():
        yield app


def gradual(app: Flask, text: Text | None = None) -> dict[str, object]:
    """20 queues; 2 more fail every 10-minute pass until 14 fail; then 10 recover, then all.

    ``text`` gives each failure its own words (default: 'disk full on <queue>' everywhere).
    Returns the figures the final report quotes.
    """
    queues = names(20)
    test = start(app, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    figures: dict[str, object] = {"excluded_per_pass": [], "alert_pass": None, "t0": t0}
    failing: list[str] = []
    t = t0
    for k in range(7):
        t = t0 + k * STEP
        new = queues[len(failing):len(failing) + 2]
        jobs(test, [q for q in queues if q not in failing + new], True, t)
        jobs(test, failing, False, t, text=text)
        jobs(test, new, False, t, count=3, text=text)
        failing += new
        robot_pass(now=t)
        figures["excluded_per_pass"].append(len(excluded()))  # type: ignore[attr-defined]
        if figures["alert_pass"] is None and alerts():
            figures["alert_pass"] = k
    figures["peak_failing"] = len(failing)
    t += STEP
    jobs(test, failing[:10], True, t, count=2)   # 10 recover; 4 keep only outage-era failures
    figures["closing"] = robot_pass(now=t)
    figures["after_close"] = []
    for _ in range(7):                           # a guard window and more: no new jobs on the 4
        t += STEP
        jobs(test, [q for q in queues if q not in failing[10:]], True, t)
        figures["after_close"].append(robot_pass(now=t)["excluded"])  # type: ignore[attr-defined]
    t += STEP
    jobs(test, failing[10:], True, t, count=2)
    robot_pass(now=t)
    figures["end"] = t
    return figures


def test_gradual_outage_excludes_at_most_two_then_rolls_them_back(tmp_path: Path) -> None:
    record = tmp_path / "actions.txt"
    write = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')",
             str(record)]
    robot = {**DICT_SECTIONS["ROBOT"], "actions": {"local": {"exclude": [
        {"type": "command", "argv": [*write, "drain", "{queue}"], "undo": [*write, "undo", "{queue}"]}]}}}
    app = make_app(tmp_path / "inst", ROBOT=robot)
    with app.app_context():
        figures = gradual(app)
        per_pass = figures["excluded_per_pass"]
        assert per_pass[0] == 2 and max(per_pass) == 2, per_pass  # type: ignore[operator]
        assert figures["alert_pass"] == 3, "the alert comes at 8 of 20 failing (past 30 %)"
        assert per_pass[3:] == [0, 0, 0, 0], "the window's two exclusions are rolled back"
        outage = alerts()
        assert len(outage) == 1 and "disk full on <queue>" in outage[0].message
        assert f"since {figures['t0']:%Y-%m-%d %H:%M}" in outage[0].timeline[0]["text"]
        assert outage[0].closed_at is not None, "the alert closes when the failures stop"
        assert figures["closing"]["excluded"] == 0 and figures["after_close"] == [0] * 7  # type: ignore[index]
        assert excluded() == []
        assert not record.exists(), "actions wait in the outbox for the actions tick"
        assert deliver()["delivered"] == 4
        assert record.read_text().splitlines() == ["drain q00", "drain q01", "undo q00", "undo q01"]
        kinds = list(db.session.scalars(select(RobotEvent.kind).where(RobotEvent.kind.in_(
            ["exclude", "rollback", "recover"])).order_by(RobotEvent.id)))
        assert kinds == ["exclude", "exclude", "rollback", "rollback"]
        held = RobotState.get().last_summary
        assert not any(row.get("held") for row in held.values())
        db.session.remove()
        db.engine.dispose()


def test_suspicion_hold_is_shown_with_its_reason(ctx: Flask) -> None:
    queues = names(20)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, queues[:4], False, t0, count=3)
    robot_pass(now=t0)
    summary = RobotState.get().last_summary
    assert excluded() == []
    assert summary["q00"]["held"].startswith(
        "suspicion hold: 4 queues failing or held out with 'exit 3: disk full on <queue>'")
    for k in range(1, 7):                        # still 4 of 20 after one guard window: a local problem each
        jobs(test, queues[:4], False, t0 + k * STEP)
        robot_pass(now=t0 + k * STEP)
    assert excluded() == queues[:4] and alerts() == []


def test_sudden_outage_on_a_small_site(ctx: Flask) -> None:
    queues = names(5)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, queues[:3], False, t0, count=3)
    counts = robot_pass(now=t0)
    assert counts["outage"] == 1 and counts["excluded"] == 0
    assert excluded() == [] and len(alerts()) == 1
    assert "3 of 5 judged queues failing" in alerts()[0].message


def test_one_broken_queue_among_twenty_is_excluded_and_recovered(ctx: Flask) -> None:
    queues = names(20)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, ["q07"], False, t0, count=3)
    assert robot_pass(now=t0)["excluded"] == 1 and excluded() == ["q07"]
    jobs(test, ["q07"], True, t0 + STEP, count=2)
    assert robot_pass(now=t0 + STEP)["recovered"] == 1 and excluded() == []
    rules = list(db.session.scalars(select(QueueEvent.rule).order_by(QueueEvent.id)))
    assert rules == ["last_failed_in_one", "recover"] and alerts() == []


@pytest.mark.parametrize(("size", "failing", "excluded_n", "alert"), [
    (2, 2, 2, False),   # below outage_min_queues: the guard can never fire on two queues
    (3, 2, 2, False),
    (3, 3, 0, True),    # three of three
    (4, 3, 0, True),
    (5, 2, 2, False),
    (5, 3, 0, True),    # 3 of 5 is past 30 %: any 3 failing together is an outage up to 9 queues
])
def test_small_sites(ctx: Flask, size: int, failing: int, excluded_n: int, alert: bool) -> None:
    queues = names(size)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, queues[:failing], False, t0, count=3)
    robot_pass(now=t0)
    assert len(excluded()) == excluded_n and (len(alerts()) == 1) is alert


def test_after_an_outage_new_failures_wait_one_window(ctx: Flask) -> None:
    queues = names(5)
    test = start(ctx, queues)
    t0 = base_time()
    jobs(test, queues, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, queues[:3], False, t0, count=3)
    robot_pass(now=t0)
    t1 = t0 + STEP
    jobs(test, queues[:3], True, t1, count=2)
    robot_pass(now=t1)
    assert alerts()[0].closed_at == t1
    jobs(test, ["q04"], False, t1 + STEP, count=3)  # a fresh, independent failure after the close
    robot_pass(now=t1 + STEP)
    assert excluded() == [] and "outage alert closed" in RobotState.get().last_summary["q04"]["held"]
    t2 = t1 + timedelta(hours=1, minutes=5)
    jobs(test, ["q04"], False, t2)
    robot_pass(now=t2)
    assert excluded() == ["q04"]
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 1


def test_an_undo_must_be_an_argument_list() -> None:
    from hcflask.config import ConfigError
    from hcflask.engine.robot.rules import check_actions

    with pytest.raises(ConfigError, match=r"robot.actions.local.exclude\[0\].undo: must be a non-empty list"):
        check_actions({"local": {"exclude": [{"type": "command", "argv": ["true"], "undo": "scontrol up"}]}})
    check_actions({"local": {"exclude": [{"type": "command", "argv": ["true"], "undo": ["true"]}]}})

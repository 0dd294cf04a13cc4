"""The robot on real jobs run by the ``local`` backend.

The workload fails on a queue while a flag file named after the queue
exists, so a test can break and repair queues at will.  The ticks are the
real ones; the robot pass is called directly where a test needs to look
between two jobs.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.engine import actions
from hcflask.engine.common import record_health
from hcflask.engine.robot.robot import robot_pass, set_enabled
from hcflask.engine.robot.rules import Outcome, Series, Settings, judge_queue
from hcflask.extensions import db
from hcflask.models import Alert, Job, Queue, QueueEvent, RobotEvent, RobotState, utcnow
from tests.factories import make_queue, make_template, make_test, run_ticks


def script(flags: Path) -> str:
    return (f'if [ -e "{flags}/$HC_QUEUE" ]; then echo "disk full on $HC_QUEUE" >&2; exit 3; fi\n'
            'echo "hc-ok value=42"')


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    path = tmp_path / "flags"
    path.mkdir()
    return path


@pytest.fixture
def ctx(app: Flask):
    with app.app_context():
        yield app


def finished(queue: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Job).join(Queue).where(
        Queue.name == queue, Job.state.in_(["succeeded", "failed"]))) or 0


def succeeded(queue: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Job).join(Queue).where(
        Queue.name == queue, Job.state == "succeeded")) or 0


def until_finished(app: Flask, counts: dict[str, int]) -> Callable[[], None]:
    run_ticks(app, lambda: all(finished(q) >= n for q, n in counts.items()), timeout=60)


def status(name: str) -> str:
    db.session.expire_all()
    return db.session.scalar(select(Queue.status).where(Queue.name == name))


def start(app: Flask, flags: Path, queues: list[str], name: str = "t1", **kw) -> None:
    for q in queues:
        make_queue(q)
    make_test(make_template(name, queues, script=script(flags), autoexclusion=True, **kw), app)


def test_excluded_after_exactly_three_failures_with_the_deciding_jobs(ctx: Flask, flags: Path) -> None:
    (flags / "bad1").touch()
    start(ctx, flags, ["bad1", "good1"])
    for n in (1, 2):
        until_finished(ctx, {"bad1": n})
        robot_pass()
        assert status("bad1") == "online", f"excluded after {n} failures"
    until_finished(ctx, {"bad1": 3, "good1": 2})
    counts = robot_pass()
    assert counts["excluded"] == 1
    assert status("bad1") == "excluded" and status("good1") == "online"
    event = db.session.scalar(select(QueueEvent).where(QueueEvent.new_status == "excluded"))
    assert event.actor == "robot" and event.rule == "last_failed_in_one"
    failed = list(db.session.scalars(select(Job.id).join(Queue).where(Queue.name == "bad1", Job.state == "failed")
                                     .order_by(Job.ended_at.desc()).limit(3)))
    assert sorted(event.job_ids) == sorted(failed)
    assert db.session.scalar(select(RobotEvent).where(RobotEvent.kind == "exclude")).queue == "bad1"


def test_recovery_only_of_robot_excluded_queues(ctx: Flask, flags: Path) -> None:
    (flags / "bad1").touch()
    start(ctx, flags, ["bad1", "adm1"])
    until_finished(ctx, {"bad1": 3, "adm1": 2})
    robot_pass()
    assert status("bad1") == "excluded"
    actions.set_queue_status(db.session.scalar(select(Queue).where(Queue.name == "adm1")), "offline", "admin:x")
    (flags / "bad1").unlink()
    run_ticks(ctx, lambda: succeeded("bad1") >= 1, timeout=60)
    robot_pass()
    assert status("bad1") == "excluded", "recovered after a single success"
    run_ticks(ctx, lambda: succeeded("bad1") >= 2, timeout=60)
    assert robot_pass()["recovered"] == 1
    assert status("bad1") == "online"
    assert status("adm1") == "offline", "the robot touched an admin's offline queue"
    summary = RobotState.get().last_summary
    assert summary["adm1"]["verdict"] == "not_judged"


def test_anti_flapping_same_evidence_does_not_exclude_again(ctx: Flask, flags: Path) -> None:
    (flags / "bad1").touch()
    start(ctx, flags, ["bad1"])
    until_finished(ctx, {"bad1": 3})
    robot_pass()
    assert status("bad1") == "excluded"
    queue = db.session.scalar(select(Queue).where(Queue.name == "bad1"))
    actions.set_queue_status(queue, "online", "admin:x", "fixed, I think")
    robot_pass()
    assert status("bad1") == "online", "re-excluded by the jobs that excluded it before"
    assert RobotState.get().last_summary["bad1"]["verdict"] == "needs_jobs"
    back = queue.status_changed_at
    run_ticks(ctx, lambda: (db.session.scalar(select(func.count()).select_from(Job).where(
        Job.queue_id == queue.id, Job.state == "failed", Job.ended_at >= back)) or 0) >= 3, timeout=60)
    robot_pass()
    assert status("bad1") == "excluded", "three new failures must exclude again"


def test_switch_off_and_opt_out_hold_the_exclusion(ctx: Flask, flags: Path) -> None:
    (flags / "bad1").touch()
    (flags / "bad2").touch()
    start(ctx, flags, ["bad1", "bad2", "ok1", "ok2", "ok3", "ok4", "ok5"])
    db.session.scalar(select(Queue).where(Queue.name == "bad2")).autoexclusion = False
    db.session.commit()
    set_enabled(False, "admin:x", "maintenance")
    until_finished(ctx, {"bad1": 3, "bad2": 3})
    robot_pass()
    assert status("bad1") == "online"
    summary = RobotState.get().last_summary
    assert summary["bad1"]["held"] == "auto-exclusion is switched off"
    set_enabled(True, "admin:x")
    robot_pass()
    assert status("bad1") == "excluded" and status("bad2") == "online"
    switches = list(db.session.scalars(select(RobotEvent.message).where(RobotEvent.kind == "switch")))
    assert switches == ["auto-exclusion switched off: maintenance", "auto-exclusion switched on"]


def test_outage_guard_excludes_none_and_alert_closes(ctx: Flask, flags: Path) -> None:
    bad = ["q1", "q2", "q3"]
    for q in bad:
        (flags / q).touch()
    start(ctx, flags, [*bad, "q4"])
    until_finished(ctx, {q: 3 for q in bad})
    counts = robot_pass()
    assert counts["outage"] == 1 and counts["excluded"] == 0
    assert all(status(q) == "online" for q in bad)
    alerts = list(db.session.scalars(select(Alert)))
    assert len(alerts) == 1 and alerts[0].kind == "outage" and alerts[0].is_open
    assert "3 of 4 judged queues failing" in alerts[0].message and "disk full" in alerts[0].message
    robot_pass()
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 1, "a second alert was opened"
    for q in bad:
        (flags / q).unlink()
    run_ticks(ctx, lambda: all(succeeded(q) >= 2 for q in bad), timeout=60)
    robot_pass()
    alert = db.session.get(Alert, alerts[0].id)
    assert alert.closed_at is not None and [t["text"][:6] for t in alert.timeline] == ["opened", "closed"]
    assert all(status(q) == "online" for q in bad)


def test_backend_down_is_not_judged_and_raises_a_backend_alert(ctx: Flask, flags: Path) -> None:
    """The outage is recorded with the engine's own ``record_health`` (a local backend cannot be made
    unreachable for real)."""
    (flags / "bad1").touch()
    start(ctx, flags, ["bad1"])
    until_finished(ctx, {"bad1": 3})
    record_health("local", "fork: no more processes")
    db.session.commit()
    robot_pass()
    assert status("bad1") == "online"
    alert = db.session.scalar(select(Alert).where(Alert.kind == "backend"))
    assert alert.is_open and alert.backend == "local"
    record_health("local", None)
    db.session.commit()
    robot_pass()
    assert db.session.get(Alert, alert.id).closed_at is not None
    assert status("bad1") == "excluded"


def test_exclude_runs_the_configured_command(tmp_path: Path, flags: Path) -> None:
    import sys

    from hcflask.config import DICT_SECTIONS
    from hcflask.engine.notify import deliver
    from tests.conftest import make_app

    out = tmp_path / "argv.txt"
    argv = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('|'.join(sys.argv[2:]))",
            str(out), "PartitionName={queue}", "Reason=hcflask: {rule}", "{job_ids}"]
    robot = {**DICT_SECTIONS["ROBOT"], "actions": {"local": {"exclude": [{"type": "command", "argv": argv}]}}}
    app = make_app(tmp_path / "inst", ROBOT=robot)
    with app.app_context():
        (flags / "bad1").touch()
        start(app, flags, ["bad1"])
        until_finished(app, {"bad1": 3})
        robot_pass()
        assert not out.exists(), "actions run from the outbox, never inside the robot pass"
        assert deliver() == {"delivered": 1, "retry": 0, "failed": 0}  # the actions tick
        event = db.session.scalar(select(QueueEvent))
        ids = ",".join(map(str, event.job_ids))
        assert out.read_text() == f"PartitionName=bad1|Reason=hcflask: last_failed_in_one|{ids}"
        action = db.session.scalar(select(RobotEvent).where(RobotEvent.kind == "action"))
        assert action.ok and action.parent_id is not None
        db.session.remove()
        db.engine.dispose()


def test_rules_on_known_series() -> None:
    now = utcnow()
    params = Settings({}).get()

    def s(name: str, pattern: str) -> Series:
        return Series(name, [Outcome(i, c == "S", now) for i, c in enumerate(pattern)], params)

    assert judge_queue([s("a", "F")], params).kind == "needs_jobs"
    assert judge_queue([s("a", "FF")], params).kind == "failing"
    assert judge_queue([s("a", "FFF")], params).rule == "last_failed_in_one"
    assert judge_queue([s("a", "FFS"), s("b", "FS")], params).rule == "failed_in_two"
    assert judge_queue([s("a", "FS"), s("b", "FS"), s("c", "FS")], params).rule == "failed_in_many"
    assert judge_queue([s("a", "FS"), s("b", "FS"), s("c", "SS")], params).kind == "failing"
    assert judge_queue([s("a", "SSF"), s("b", "SS")], params).kind == "healthy"
    assert judge_queue([s("a", "SF"), s("b", "SS")], params).kind == "failing"
    assert judge_queue([], params).kind == "needs_jobs"


def test_cli_switch_status_and_run(app: Flask, flags: Path) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["robot", "disable", "--reason", "maintenance"])
    assert result.exit_code == 0, result.output
    assert "auto-exclusion is off" in result.output
    assert "auto-exclusion is off (it already was)" in runner.invoke(args=["robot", "disable"]).output
    with app.app_context():
        (flags / "bad1").touch()
        start(app, flags, ["bad1"])
        until_finished(app, {"bad1": 3})
    assert runner.invoke(args=["robot", "run"]).output.startswith("excluded=0 ")
    status_out = runner.invoke(args=["robot", "status"]).output
    assert "auto-exclusion: off" in status_out and "maintenance" in status_out
    assert re.search(r"bad1\s+online\s+exclude\s+t1=FFF", status_out), status_out
    assert "[auto-exclusion is switched off]" in status_out
    runner.invoke(args=["robot", "enable"])
    assert runner.invoke(args=["robot", "run"]).output.startswith("excluded=1 ")
    with app.app_context():
        assert status("bad1") == "excluded"


@pytest.mark.parametrize(("failing", "active", "outage"), [
    (1, 3, False),   # one broken queue among three: a queue problem
    (2, 4, False),   # fewer than outage_min_queues
    (3, 10, False),  # exactly 30%: not more than the share
    (3, 9, True),
    (12, 20, True),
])
def test_outage_guard_thresholds(failing: int, active: int, outage: bool) -> None:
    from hcflask.engine.robot.decide import is_outage

    assert is_outage(failing, active, Settings({}).get()) is outage


def test_status_says_off_when_hc_toml_switches_the_robot_off(tmp_path: Path) -> None:
    from hcflask.config import DICT_SECTIONS
    from tests.conftest import make_app

    app = make_app(tmp_path / "inst", ROBOT={**DICT_SECTIONS["ROBOT"], "enabled": False})
    runner = app.test_cli_runner()
    out = runner.invoke(args=["robot", "status"]).output
    assert out.startswith("auto-exclusion: off ([robot] enabled = false in hc.toml)"), out
    assert '"active": false' in runner.invoke(args=["robot", "status", "--json"]).output
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_disable_when_already_off_keeps_the_new_reason(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["robot", "disable"])
    out = runner.invoke(args=["robot", "disable", "--reason", "storage migration"]).output
    assert "it already was; reason recorded: storage migration" in out
    assert "storage migration" in runner.invoke(args=["robot", "status"]).output
    with app.app_context():
        assert RobotState.get().reason == "storage migration"


def test_a_robot_pass_runs_the_same_statements_for_more_queues_and_tests(app: Flask) -> None:
    """The issue measured one query per queue × test (834 a pass at 165 queues): the
    outcomes now come from one query, so 12 queues × 3 tests cost what 2 × 1 do."""
    from tests.conftest import statements
    from tests.scale_history import new_job

    def history(queues: int, tests: int) -> list[str]:
        with app.app_context():
            names = [make_queue(f"n{queues}-{i}").name for i in range(queues)]
            made = [make_test(make_template(f"n{queues}-{t}", names, autoexclusion=True), app) for t in range(tests)]
            ids = list(db.session.scalars(select(Queue.id).where(Queue.name.in_(names))))
            start = utcnow().replace(microsecond=0)
            for n, (test, queue_id) in enumerate((t, q) for t in made for q in ids):
                new_job(test, queue_id, start, 10_000 * queues + n, state="succeeded", started_at=start,
                        ended_at=start)
            db.session.commit()
        with statements(app) as seen, app.app_context():
            robot_pass()
        return [s for s in seen if s.lstrip().upper().startswith("SELECT")]

    small, large = history(2, 1), history(12, 3)
    assert len(large) == len(small), (len(small), len(large))
    assert sum("FROM queue JOIN test" in s for s in large) == 1, "the outcomes of every queue × test in one query"

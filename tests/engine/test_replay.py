"""Robot replay: the live decision step over stored history, writing nothing.

The history is the gradual-outage scenario of :mod:`tests.engine.test_outage`
(jobs written through the monitor's own judge and writer), with live
``robot_pass(now=t)`` at known times; the replay runs at the same times.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hcflask.engine.robot.replay import replay
from hcflask.extensions import db
from hcflask.models import Alert, Queue, QueueClaim, QueueEvent, RobotEvent
from tests.engine.test_outage import STEP, gradual
from tests.factories import run_ticks

MOVES = {"exclude": "excluded", "rollback": "rolled_back", "recover": "recovered"}


def live_decisions() -> set[tuple[str, str, str]]:
    rows = db.session.execute(select(RobotEvent.time, RobotEvent.kind, RobotEvent.queue).where(
        RobotEvent.kind.in_(list(MOVES))))
    alerts = db.session.execute(select(RobotEvent.time, RobotEvent.kind).where(
        RobotEvent.kind.in_(["alert_open", "alert_close"]), RobotEvent.rule == "outage"))
    return ({(iso(t), MOVES[k], q) for t, k, q in rows}
            | {(iso(t), "alert", "open" if k == "alert_open" else "close") for t, k in alerts})


def replayed(result: dict[str, Any]) -> set[tuple[str, str, str]]:
    out = set()
    for row in result["passes"]:
        for kind in MOVES.values():
            out |= {(row["time"], kind, m["queue"]) for m in row[kind]}
        out |= {(row["time"], "alert", a["event"]) for a in row["alerts"]}
    return out


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds") + "Z"


def written() -> tuple[int, ...]:
    db.session.expire_all()
    return tuple(db.session.scalar(select(func.count()).select_from(m)) or 0
                 for m in (QueueClaim, QueueEvent, RobotEvent, Alert)) + (
        db.session.scalar(select(func.sum(Queue.version))) or 0,)


@pytest.fixture
def history(app: Flask):
    with app.app_context():
        figures = gradual(app)
        yield app, figures


def test_replay_reproduces_the_live_decisions_exactly(history: tuple[Flask, dict[str, Any]]) -> None:
    app, figures = history
    live = live_decisions()
    assert len(live) == 6, live  # 2 exclusions, 2 rollbacks, the alert opened and closed
    before = written()
    result = replay(figures["t0"], figures["end"], STEP, {})
    assert replayed(result) == live
    assert result["totals"] == {"excluded": 2, "recovered": 0, "rolled_back": 2, "alerts": 2}
    assert result["excluded_at_end"] == []
    assert written() == before, "the replay wrote to the database"


def test_replay_with_other_settings_shows_what_they_would_have_done(
        history: tuple[Flask, dict[str, Any]]) -> None:
    _app, figures = history
    result = replay(figures["t0"], figures["end"], STEP, {"outage_min_queues": 30})
    assert result["totals"]["alerts"] == 0
    assert result["totals"]["excluded"] == 14 and result["excluded_at_end"] == []
    result = replay(figures["t0"], figures["t0"] + 3 * STEP, STEP, {"outage_rollback": False})
    assert result["totals"]["rolled_back"] == 0 and len(result["excluded_at_end"]) == 2
    held = result["passes"][1]["held"]
    assert held["q02"].startswith("suspicion hold: 4 queues failing")


def test_replay_from_the_cli_and_the_api(history: tuple[Flask, dict[str, Any]], client: FlaskClient) -> None:
    app, figures = history
    t0, end = iso(figures["t0"]), iso(figures["end"])
    out = app.test_cli_runner().invoke(args=["robot", "replay", "--from", t0, "--to", end, "--step", "10m"])
    assert out.exit_code == 0, out.output
    words = " ".join(out.output.split())
    assert "rolled_back q00" in words and "alert open central outage suspected: 8 of 20" in words
    assert out.output.splitlines()[-1].startswith("16 passes: excluded=2 recovered=0 rolled_back=2 alerts=2")
    body = client.get(f"/api/v1/robot/replay?from={t0}&to={end}&step=600&set=exclude_last=4").get_json()
    assert body["settings"] == {"exclude_last": 4} and len(body["passes"]) == 16


@pytest.mark.parametrize(("query", "field"), [
    ("to=2026-01-01T00:00", "from"),
    ("from=yesterday&to=2026-01-01T00:00", "from"),
    ("from=2026-01-02T00:00&to=2026-01-01T00:00", "to"),
    ("from=2026-01-01T00:00&to=2026-03-01T00:00", "to"),
    ("from=2026-01-01T00:00&to=2026-01-02T00:00&step=0", "step"),
    ("from=2026-01-01T00:00&to=2026-01-02T00:00&step=10s", "step"),
    ("from=2026-01-01T00:00&to=2026-01-02T00:00&set=nonsense=1", "set"),
    ("from=2026-01-01T00:00&to=2026-01-02T00:00&set=exclude_last=many", "set"),
    ("from=2026-01-01T00:00&to=2026-01-02T00:00&set=exclude_last=-1", "set"),
])
def test_replay_input_is_checked(client: FlaskClient, query: str, field: str) -> None:
    response = client.get(f"/api/v1/robot/replay?{query}")
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field


def test_cli_replay_bad_input_is_one_line(app: Flask) -> None:
    out = app.test_cli_runner().invoke(args=["robot", "replay", "--from", "2026-01-01", "--to", "2025-01-01"])
    assert out.exit_code != 0 and "to: must be after from" in out.output


def test_a_replay_of_an_empty_range_decides_nothing(app: Flask) -> None:
    with app.app_context():
        start = datetime(2026, 1, 1)
        result = replay(start, start + timedelta(hours=1), timedelta(minutes=30), {})
        assert [p["time"] for p in result["passes"]] == ["2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z",
                                                         "2026-01-01T01:00:00Z"]
        assert result["totals"] == {"excluded": 0, "recovered": 0, "rolled_back": 0, "alerts": 0}


def test_replay_reproduces_live_passes_on_real_jobs(app: Flask, tmp_path: Path) -> None:
    """Real local jobs (a queue breaks and is repaired by a flag file); the live robot runs at
    irregular moments between ticks, and the replay runs at exactly those moments."""
    from hcflask.engine.robot.replay import run
    from hcflask.engine.robot.robot import robot_pass
    from hcflask.models import utcnow
    from tests.engine.test_robot import start, succeeded, until_finished

    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "bad1").touch()
    times = []
    with app.app_context():
        start(app, flags, ["bad1", "good1", "good2", "good3"])
        for n in (1, 3):
            until_finished(app, {"bad1": n})
            times.append(utcnow())
            robot_pass(now=times[-1])
        (flags / "bad1").unlink()
        for n in (1, 2):
            run_ticks(app, lambda n=n: succeeded("bad1") >= n, timeout=60)
            times.append(utcnow())
            robot_pass(now=times[-1])
        live = live_decisions()
        assert {(kind, queue) for _t, kind, queue in live} == {("excluded", "bad1"), ("recovered", "bad1")}
        before = written()
        assert replayed(run(times, {})) == live
        assert written() == before

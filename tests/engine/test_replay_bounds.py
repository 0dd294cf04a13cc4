"""Replay's input has the pages' and hc.toml's limits: the years 1970-2999, T2 itself is a pass,
and a ``--set`` is refused exactly where the same value in hc.toml stops the start."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hcflask.config import ConfigError
from hcflask.engine.robot.replay import parse_sets, plan_times
from hcflask.engine.robot.rules import ABOVE_ZERO, AT_LEAST, AT_MOST
from hcflask.models import ValidationError
from tests.conftest import make_app

T1 = "2026-11-24T07:30"
T2 = "2026-11-24T08:27"


def test_the_end_is_a_pass_even_off_the_step() -> None:
    """07:30 to 08:27 at 5 min ended at 08:25 (12 passes); T2 is 08:27."""
    times = plan_times(datetime(2026, 11, 24, 7, 30), datetime(2026, 11, 24, 8, 27), timedelta(minutes=5))
    assert len(times) == 13 and times[0] == datetime(2026, 11, 24, 7, 30)
    assert times[-2:] == [datetime(2026, 11, 24, 8, 25), datetime(2026, 11, 24, 8, 27)]
    on_step = plan_times(datetime(2026, 11, 24, 7, 30), datetime(2026, 11, 24, 8, 30), timedelta(minutes=5))
    assert len(on_step) == 13 and on_step[-1] == datetime(2026, 11, 24, 8, 30)  # never twice


def test_the_pass_limit_counts_the_end_pass() -> None:
    start = datetime(2026, 1, 1)
    assert len(plan_times(start, start + timedelta(seconds=499 * 60), timedelta(minutes=1))) == 500
    with pytest.raises(ValidationError, match="^step: 501 passes; at most 500"):
        plan_times(start, start + timedelta(seconds=499 * 60 + 30), timedelta(minutes=1))


def test_the_cli_and_the_api_include_the_end(app: Flask, client: FlaskClient) -> None:
    out = app.test_cli_runner().invoke(args=["robot", "replay", "--from", T1, "--to", T2, "--step", "5m"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[-1].startswith("13 passes:")
    body = client.get(f"/api/v1/robot/replay?from={T1}&to={T2}&step=5m").get_json()
    assert len(body["passes"]) == 13 and body["passes"][-1]["time"] == "2026-11-24T08:27:00Z"
    assert body["to"] == "2026-11-24T08:27:00Z"


@pytest.mark.parametrize("year", ["3000", "9000", "1969"])
def test_years_the_pages_refuse_are_refused(app: Flask, client: FlaskClient, year: str) -> None:
    response = client.get(f"/api/v1/robot/replay?from={year}-01-01T00:00&to=2026-01-01T00:00")
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "from"
    out = app.test_cli_runner().invoke(args=["robot", "replay", "--from", f"{year}-01-01", "--to", "2026-01-02"])
    assert out.exit_code == 1 and out.output.strip() == (
        f"Error: from: must be in the years 1970-2999, got '{year}-01-01'")


def test_the_last_year_of_the_pages_is_accepted(client: FlaskClient) -> None:
    response = client.get("/api/v1/robot/replay?from=2999-12-30T00:00&to=2999-12-31T23:59&step=1h")
    assert response.status_code == 200 and response.get_json()["passes"][-1]["time"] == "2999-12-31T23:59:00Z"


def below(key: str) -> Any:
    if key in AT_LEAST:
        return AT_LEAST[key] - 1
    if key in ABOVE_ZERO:
        return 0
    return AT_MOST[key] * 2


LIMITED = sorted({*AT_LEAST, *ABOVE_ZERO, *AT_MOST})


@pytest.mark.parametrize("key", LIMITED)
def test_a_setting_out_of_range_is_refused_in_hc_toml_and_in_a_replay_alike(tmp_path: Path, key: str) -> None:
    value = below(key)
    (tmp_path / "hc.toml").write_text(f"[robot]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as in_toml:
        make_app(tmp_path, SECRET_KEY="x", ROBOT={key: value})
    with pytest.raises(ValidationError) as in_replay:
        parse_sets([f"{key}={value}"])
    assert str(in_replay.value) == f"set: {in_toml.value}"
    assert f"robot.{key}: must be" in str(in_toml.value)


def test_exclude_last_0_is_refused_with_its_limit(app: Flask, client: FlaskClient) -> None:
    """It was accepted and silently turned the rule off."""
    out = app.test_cli_runner().invoke(args=["robot", "replay", "--from", T1, "--to", T2, "--set", "exclude_last=0"])
    assert out.exit_code == 1 and out.output.strip() == "Error: set: robot.exclude_last: must be at least 1, got 0"
    response = client.get(f"/api/v1/robot/replay?from={T1}&to={T2}&set=exclude_last=0")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "set" and error["message"] == "set: robot.exclude_last: must be at least 1, got 0"


def test_per_queue_and_per_template_settings_have_the_same_limits(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^robot\.queues\.q1\.exclude_last: must be at least 1, got 0$"):
        make_app(tmp_path, ROBOT={"queues": {"q1": {"exclude_last": 0}}})
    with pytest.raises(ConfigError, match=r"^robot\.templates\.t\.window_hours: must be greater than 0"):
        make_app(tmp_path, ROBOT={"templates": {"t": {"window_hours": 0.0}}})


@pytest.mark.parametrize(("pair", "message"), [
    ("enabled=maybe", "set: enabled: expected true or false, got 'maybe'"),
    ("window_hours=inf", "set: robot.window_hours: expected a finite number, got inf"),
    ("exclude_last=2.5", "set: exclude_last: expected a whole number, got '2.5'"),
])
def test_a_replay_setting_is_read_as_strictly_as_hc_toml(pair: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_sets([pair])
    assert str(refused.value) == message


def test_good_settings_still_pass() -> None:
    assert parse_sets(["exclude_last=1", "enabled=off", "outage_share=1", "flap_hours=0"]) == {
        "exclude_last": 1, "enabled": False, "outage_share": 1.0, "flap_hours": 0.0}

"""Configuration layers and their errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from hcflask import create_app
from hcflask.config import ConfigError, load, write_initial


def test_layers_defaults_file_environment(tmp_path: Path) -> None:
    (tmp_path / "hc.toml").write_text(
        'secret_key = "s"\n[server]\nport = 9000\n[scheduler]\nmonitor_seconds = 7\n'
        '[backends.slurm]\ncommand_timeout = 5\n'
    )
    config = load(tmp_path, {"HC_PORT": "9100", "HC_SCHEDULER_CORE_SECONDS": "2.5"})
    assert config["SERVER_PORT"] == 9100  # environment beats the file
    assert config["SCHEDULER_MONITOR_SECONDS"] == 7.0
    assert config["SCHEDULER_CORE_SECONDS"] == 2.5
    assert config["SERVER_BIND"] == "127.0.0.1"  # default
    assert config["BACKENDS"]["slurm"] == {"command_timeout": 5}
    assert config["BACKENDS"]["local"] == {}
    ticks = load(tmp_path, {"HC_TICK_SECONDS": "1"})
    intervals = ("CORE", "SUBMISSION", "MONITOR", "ACTIONS")
    assert {ticks[f"SCHEDULER_{k}_SECONDS"] for k in intervals} == {1.0}
    assert ticks["SCHEDULER_STALE_SECONDS"] == 300.0  # not an interval: how old a tick may get


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("colour = 1\n", {}, "unknown key 'colour'"),
        ("[server]\nprot = 1\n", {}, "unknown key 'server.prot'"),
        ("[server]\nport = 'high'\n", {}, "server.port: expected a number"),
        ("read_requires_login = 'perhaps'\n", {}, "read_requires_login: expected bool"),
        ("[server\n", {}, "not valid TOML"),
        ("", {"HC_PORT": "eighty"}, "HC_PORT: expected a number"),
        ("", {"HC_SCHEDULER_ENABLED": "perhaps"}, "HC_SCHEDULER_ENABLED: expected bool"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    (tmp_path / "hc.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, env)


def test_initial_file_has_a_secret_and_is_private(tmp_path: Path) -> None:
    path = write_initial(tmp_path / "inst")
    config = load(tmp_path / "inst", {})
    assert len(config["SECRET_KEY"]) == 64
    assert path.stat().st_mode & 0o077 == 0
    assert write_initial(tmp_path / "inst").read_text() == path.read_text()  # never overwritten


def test_factory_refuses_to_run_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secret_key is not set"):
        create_app({"INSTANCE_PATH": tmp_path})


def test_factory_checks_the_robot_section(tmp_path: Path) -> None:
    (tmp_path / "hc.toml").write_text('secret_key = "s"\n[robot]\nwindw_hours = 3\n')
    with pytest.raises(ConfigError, match="robot: unknown key 'windw_hours'"):
        create_app({"INSTANCE_PATH": tmp_path})

"""The ``hc`` command: template files in and out, and one clear line on bad input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner

GOOD_YAML = """
name: demo2
description: trivial job that prints one metric
queues: [local]
lifetime: 86400
jobs_in_flight: 2
max_jobs: 0
autoexclusion: false
renew: true
workload:
  script: |
    echo "hc-ok value=42"
  resources: {cores: 1, memory_mb: 500, walltime: 600}
  success: {exit_code: 0, must_match: ["hc-ok"], must_not_match: []}
  metrics:
    value: {pattern: 'value=(?P<value>[0-9.]+)', unit: "", reference: null}
"""
GOOD_TOML = """
name = "tomled"
queues = ["local"]
[workload]
script = "echo hc-ok"
[workload.resources]
cores = 2
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_import_yaml_and_toml_then_export_round_trip(runner: FlaskCliRunner, tmp_path: Path) -> None:
    result = runner.invoke(args=["template", "import", write(tmp_path, "t.yaml", GOOD_YAML)])
    assert result.exit_code == 0, result.output
    assert "template demo2 created" in result.output
    result = runner.invoke(args=["template", "add", write(tmp_path, "t.toml", GOOD_TOML)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(args=["template", "list"]).output
    assert "demo2" in listed and "tomled" in listed
    exported = tmp_path / "out.toml"
    assert runner.invoke(args=["template", "export", "demo2", "-o", str(exported)]).exit_code == 0
    again = runner.invoke(args=["template", "import", str(exported)])
    assert again.exit_code == 0, again.output
    shown = runner.invoke(args=["template", "show", "demo2"]).output
    assert "script: |" in shown and "jobs_in_flight: 2" in shown


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "name: [unclosed", "not valid YAML"),
        ("bad.toml", "name = ", "not valid TOML"),
        ("bad.txt", "name: x", "unknown format"),
        ("nofield.yaml", "name: x\nqueues: [a]\n", "workload: required"),
        ("cores.yaml", "name: x\nqueues: [a]\nworkload: {script: x, resources: {cores: -1}}\n",
         "workload.resources.cores: must be at least 1"),
        ("list.yaml", "- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_files_give_one_clear_line(runner: FlaskCliRunner, tmp_path: Path, name: str, text: str,
                                       message: str) -> None:
    result = runner.invoke(args=["template", "import", write(tmp_path, name, text)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert message in lines[0]


def test_missing_file_and_duplicate_add(runner: FlaskCliRunner, tmp_path: Path) -> None:
    assert "No such file" in runner.invoke(args=["template", "import", str(tmp_path / "none.yaml")]).output
    path = write(tmp_path, "t.yaml", GOOD_YAML)
    runner.invoke(args=["template", "add", path])
    result = runner.invoke(args=["template", "add", path])
    assert result.exit_code != 0 and "exists already" in result.output


def test_queue_test_user_token_commands(runner: FlaskCliRunner, tmp_path: Path) -> None:
    assert runner.invoke(args=["queue", "add", "local", "--backend", "local", "-o", "slots=2"]).exit_code == 0
    bad = runner.invoke(args=["queue", "add", "x", "--backend", "local", "-o", "slots=none"])
    assert bad.exit_code != 0 and "options.slots" in bad.output
    assert "unknown backend" in runner.invoke(args=["queue", "add", "y", "--backend", "pbs"]).output
    assert "online" in runner.invoke(args=["queue", "list"]).output
    result = runner.invoke(args=["queue", "set-status", "local", "offline", "--reason", "maintenance"])
    assert result.exit_code == 0 and "offline" in result.output
    assert "unknown status" in runner.invoke(args=["queue", "set-status", "local", "gone"]).output
    runner.invoke(args=["template", "import", write(tmp_path, "t.yaml", GOOD_YAML)])
    started = runner.invoke(args=["test", "start", "demo2"])
    assert started.exit_code == 0 and "scheduled" in started.output
    assert "demo2" in runner.invoke(args=["test", "list"]).output
    assert runner.invoke(args=["test", "cancel", "1"]).exit_code == 0
    assert "already cancelled" in runner.invoke(args=["test", "cancel", "1"]).output
    assert "at least 8" in runner.invoke(args=["user", "add", "bob", "--password", "short"]).output
    assert runner.invoke(args=["user", "add", "bob", "--password", "long enough"]).exit_code == 0
    token = runner.invoke(args=["token", "create", "bob"]).output.strip()
    assert token.startswith("hct_")
    assert "no such user" in runner.invoke(args=["token", "create", "nobody"]).output


def test_hc_entry_point_initialises_an_empty_instance(tmp_path: Path) -> None:
    env = {"HC_INSTANCE": str(tmp_path / "inst"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    hc = [sys.executable, "-c", "from hcflask.cli import main; main()"]
    version = subprocess.run([*hc, "--version"], env=env, capture_output=True, text=True, check=True)
    assert version.stdout.startswith("hcflask ")
    listed = subprocess.run([*hc, "template", "list"], env=env, capture_output=True, text=True, check=True)
    assert "demo" in listed.stdout
    assert (tmp_path / "inst" / "hc.toml").exists() and (tmp_path / "inst" / "hc.sqlite").exists()
    (tmp_path / "inst" / "hc.toml").write_text('secret_key = "x"\n[scheduler]\ncore_second = 3\n')
    broken = subprocess.run([*hc, "queue", "list"], env=env, capture_output=True, text=True)
    assert broken.returncode == 2
    assert broken.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'inst' / 'hc.toml'}: unknown key 'scheduler.core_second'"
    ]


def test_queue_import_cric(runner: FlaskCliRunner, tmp_path: Path) -> None:
    cric = write(tmp_path, "cric.json", '{"SITE_A": {"status": "online", "state": "ACTIVE", "type": "unified"},'
                                        ' "SITE_B": {"status": "brokeroff", "state": "ACTIVE"}}')
    result = runner.invoke(args=["queue", "import-cric", cric, "-o", "server=https://panda.example:25443"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(args=["queue", "list"]).output
    assert "SITE_A" in listed and "SITE_B" in listed and "offline" in listed
    bad = runner.invoke(args=["queue", "import-cric", write(tmp_path, "bad.json", "{nope")])
    assert bad.exit_code != 0 and bad.output.startswith("Error: file: cannot read")

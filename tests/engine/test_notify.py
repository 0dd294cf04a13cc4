"""Robot actions: a real HTTP server on 127.0.0.1 for the webhook, a real
command for the command action, and a refused connection for the failure."""
from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from hcflask.config import DICT_SECTIONS, ConfigError
from hcflask.engine.notify import check_actions, dispatch, event_data
from hcflask.engine.rules import check_config
from hcflask.extensions import db
from hcflask.models import Alert, RobotEvent


class Hook:
    """A webhook receiver that fails the first ``failures`` requests with HTTP 500."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failures = failures
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.bodies.append(body)
                code = 500 if len(hook.bodies) <= hook.failures else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"boom")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook(failures=1)
    yield server
    server.close()


def _event(kind: str = "exclude") -> RobotEvent:
    event = RobotEvent(kind=kind, queue="q1", backend="local", rule="last_failed_in_one",
                       message="the last 3 jobs of t1 failed", job_ids=[4, 5, 6])
    db.session.add(event)
    db.session.commit()
    return event


def _config(actions: dict[str, Any]) -> dict[str, Any]:
    config = {**DICT_SECTIONS["ROBOT"], "actions": actions}
    check_config(config)
    return config


def test_webhook_retries_then_posts_the_event(app: Flask, hook: Hook) -> None:
    with app.app_context():
        event = _event()
        config = _config({"default": {"exclude": [{"type": "webhook", "url": hook.url, "retries": 2}]}})
        rows = dispatch(config, event, event_data(event, old_status="online", new_status="excluded"))
        assert len(hook.bodies) == 2, "the first answer was a 500: one retry expected"
        body = hook.bodies[-1]
        assert body["event"] == "exclude" and body["queue"] == "q1" and body["job_ids"] == [4, 5, 6]
        assert body["rule"] == "last_failed_in_one" and body["new_status"] == "excluded"
        assert rows[0].ok and "attempt 2" in rows[0].message and rows[0].parent_id == event.id


def test_failing_actions_are_logged_and_do_not_stop_the_others(app: Flask, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    out = tmp_path / "argv.json"
    argv = [sys.executable, "-c", "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))",
            str(out), "{queue}", "{reason}", "{event}"]
    actions = {"local": {"exclude": [
        {"type": "webhook", "url": dead, "retries": 1, "timeout": 2},
        {"type": "command", "argv": ["/nonexistent/scontrol", "{queue}"]},
        {"type": "command", "argv": argv},
    ]}}
    with app.app_context():
        event = _event()
        rows = dispatch(_config(actions), event, event_data(event))
        assert [r.ok for r in rows] == [False, False, True]
        assert "failed after 2 attempts" in rows[0].message
        assert "command not found" in rows[1].message
        assert json.loads(out.read_text()) == ["q1", "the last 3 jobs of t1 failed", "exclude"]
        assert db.session.get(RobotEvent, event.id) is not None
        logged = db.session.scalars(select(RobotEvent).where(RobotEvent.kind == "action")).all()
        assert len(logged) == 3
        alerts = {a.key: a for a in db.session.scalars(select(Alert))}
        assert set(alerts) == {"action:local:exclude[0]", "action:local:exclude[1]"}
        assert all(a.kind == "robot" and a.is_open for a in alerts.values())


def test_robot_alert_closes_when_the_action_works_again(app: Flask, hook: Hook) -> None:
    with app.app_context():
        event = _event()
        failing = _config({"local": {"exclude": [{"type": "webhook", "url": hook.url, "retries": 0}]}})
        assert not dispatch(failing, event, event_data(event))[0].ok
        alert = db.session.scalar(select(Alert).where(Alert.kind == "robot"))
        assert alert.is_open and "HTTP 500" in alert.message
        assert dispatch(failing, event, event_data(event))[0].ok
        assert db.session.get(Alert, alert.id).closed_at is not None


def test_no_actions_means_record_only(app: Flask) -> None:
    with app.app_context():
        event = _event("recover")
        assert dispatch(_config({}), event, event_data(event)) == []


@pytest.mark.parametrize(("actions", "message"), [
    ({"slurm": {"drain": []}}, "unknown event 'drain'"),
    ({"slurm": {"exclude": [{"type": "shell", "cmd": "x"}]}}, "needs type"),
    ({"slurm": {"exclude": [{"type": "command", "argv": "scontrol update"}]}}, "argv: must be a non-empty list"),
    ({"slurm": {"alert": [{"type": "webhook", "url": "ftp://x"}]}}, "url: must be an http"),
])
def test_bad_action_config_names_the_key(actions: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_actions(actions)


def test_bad_robot_numbers_name_the_key() -> None:
    with pytest.raises(ConfigError, match="robot.exclude_last: expected a whole number"):
        check_config({"exclude_last": 2.5})
    with pytest.raises(ConfigError, match="robot.queues.q1: unknown key 'outage_share'"):
        check_config({"queues": {"q1": {"outage_share": 0.5}}})
    with pytest.raises(ConfigError, match="unknown key 'windw_hours'"):
        check_config({"windw_hours": 3})

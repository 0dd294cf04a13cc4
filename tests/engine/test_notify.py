"""Robot actions through the outbox: a real HTTP server on 127.0.0.1 for the
webhook, a real command for the command action, and a refused connection
for the failure."""
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
from hcflask.engine.notify import deliver, enqueue, event_data
from hcflask.engine.robot.rules import check_actions, check_config
from hcflask.extensions import db
from hcflask.models import Alert, Delivery, RobotEvent


class Hook:
    """A webhook receiver that fails the first ``failures`` requests with HTTP 500."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.ids: list[str | None] = []
        self.failures = failures
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.bodies.append(body)
                hook.ids.append(self.headers.get("X-HC-Delivery"))
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


def _event(kind: str = "exclude", data: dict[str, Any] | None = None) -> RobotEvent:
    """A decision and its outbox rows, committed together (as the robot does)."""
    event = RobotEvent(kind=kind, queue="q1", backend="local", rule="last_failed_in_one",
                       message="the last 3 jobs of t1 failed", job_ids=[4, 5, 6])
    db.session.add(event)
    db.session.flush()
    enqueue(event, event_data(event, **(data or {})))
    db.session.commit()
    return event


def _config(app: Flask, actions: dict[str, Any]) -> None:
    config = {**DICT_SECTIONS["ROBOT"], "actions": actions, "action_backoff_seconds": 0.0}
    check_config(config)
    app.config["ROBOT"] = config


def _deliveries() -> list[Delivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(Delivery).order_by(Delivery.id)))


def test_webhook_is_retried_from_the_outbox_then_posts_the_event(app: Flask, hook: Hook) -> None:
    with app.app_context():
        _config(app, {"default": {"exclude": [{"type": "webhook", "url": hook.url}]}})
        event = _event(data={"old_status": "online", "new_status": "excluded"})
        assert deliver() == {"delivered": 0, "retry": 1, "failed": 0}
        [row] = _deliveries()
        assert (row.state, row.attempts) == ("pending", 1)
        assert row.target == hook.url.rsplit("/", 1)[0], "a webhook is shown as its scheme and host only"
        assert "HTTP 500" in row.last_error
        assert deliver() == {"delivered": 1, "retry": 0, "failed": 0}
        assert len(hook.bodies) == 2, "the first answer was a 500: one retry expected"
        body = hook.bodies[-1]
        assert body["event"] == "exclude" and body["queue"] == "q1" and body["job_ids"] == [4, 5, 6]
        assert body["rule"] == "last_failed_in_one" and body["new_status"] == "excluded" and body["id"] == event.id
        [row] = _deliveries()
        assert (row.state, row.attempts, row.last_error) == ("delivered", 2, "")
        assert hook.ids == [row.uid, row.uid] and body["delivery"] == row.uid, "one id on every attempt"
        logged = db.session.scalars(select(RobotEvent).where(RobotEvent.kind == "action")).one()
        assert logged.ok and logged.parent_id == event.id and "(attempt 2)" in logged.message
        assert deliver() == {"delivered": 0, "retry": 0, "failed": 0}, "delivered once, never again"


def test_failing_actions_are_logged_and_do_not_stop_the_others(app: Flask, tmp_path: Path) -> None:
    """The dead webhook holds back no command; the missing command holds back the next command of
    its queue (one lane) until it has failed for good."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    out = tmp_path / "argv.json"
    argv = [sys.executable, "-c", "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))",
            str(out), "{queue}", "{reason}", "{event}"]
    with app.app_context():
        _config(app, {"local": {"exclude": [
            {"type": "webhook", "url": dead, "timeout": 2},
            {"type": "command", "argv": ["/nonexistent/scontrol", "{queue}"]},
            {"type": "command", "argv": argv},
        ]}})
        app.config["ROBOT"]["action_retries"] = 1
        event = _event()
        assert deliver() == {"delivered": 0, "retry": 2, "failed": 0}
        assert not out.exists(), "the second command waits for the first"
        assert deliver() == {"delivered": 1, "retry": 0, "failed": 2}
        assert [(r.state, r.attempts) for r in _deliveries()] == [("failed", 2), ("failed", 2), ("delivered", 1)]
        messages = [r.last_error for r in _deliveries()]
        assert "ConnectionError" in messages[0] and "command not found" in messages[1]
        assert json.loads(out.read_text()) == ["q1", "the last 3 jobs of t1 failed", "exclude"]
        assert db.session.get(RobotEvent, event.id) is not None
        logged = db.session.scalars(select(RobotEvent).where(RobotEvent.kind == "action")).all()
        assert sorted(r.ok for r in logged) == [False, False, True]
        alerts = {a.key: a for a in db.session.scalars(select(Alert))}
        assert set(alerts) == {"action:local.exclude.0", "action:local.exclude.1"}
        assert all(a.kind == "robot" and a.is_open for a in alerts.values())


def test_robot_alert_closes_when_the_action_works_again(app: Flask, hook: Hook) -> None:
    with app.app_context():
        _config(app, {"local": {"exclude": [{"type": "webhook", "url": hook.url}]}})
        app.config["ROBOT"]["action_retries"] = 0
        _event()
        assert deliver()["failed"] == 1
        alert = db.session.scalar(select(Alert).where(Alert.kind == "robot"))
        assert alert.is_open and "HTTP 500" in alert.message
        _event()
        assert deliver()["delivered"] == 1
        assert db.session.get(Alert, alert.id).closed_at is not None


def test_the_outbox_keeps_no_url_and_never_runs_an_edited_action(app: Flask, hook: Hook) -> None:
    secret = hook.url + "?token=s3cret"
    with app.app_context():
        _config(app, {"local": {"exclude": [{"type": "webhook", "url": secret}]}})
        _event()
        [row] = _deliveries()
        assert "s3cret" not in json.dumps(row.to_dict()) and "s3cret" not in json.dumps(row.data)
        page = app.test_client().get("/robot").get_data(as_text=True)
        deliveries = page[page.index('id="deliveries"'):]
        assert "webhook (local.exclude.0)" in deliveries and "<td>pending</td>" in deliveries
        assert "s3cret" not in page
        _config(app, {"local": {"exclude": [{"type": "webhook", "url": hook.url + "?other"}]}})
        assert deliver() == {"delivered": 0, "retry": 0, "failed": 1}
        assert hook.bodies == []
        assert "no longer configured" in _deliveries()[0].last_error


def test_no_actions_means_record_only(app: Flask) -> None:
    with app.app_context():
        _config(app, {})
        _event("recover")
        assert _deliveries() == []


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

"""The outbox delivers in order, counts honestly and never runs one row twice at once,
on SQLite and on a real PostgreSQL.

The actions are real commands (a small script that appends a line per run
to a file, and fails while a flag file names its queue, or its event and
queue: the "controller down" of these tests); the second deliverer and the deliverer killed mid-action
are real processes (:mod:`tests.engine.deliverer`) on the same database.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hcflask.engine.notify import deliver, enqueue, event_data, ordering_key
from hcflask.extensions import db
from hcflask.models import Delivery, RobotEvent
from tests.conftest import make_app

ROOT = Path(__file__).resolve().parents[2]
RECORD = """import os, sys, time
log, flags, pause, *words = sys.argv[1:]
if {"fail-" + words[1], "fail-" + "-".join(words[:2])} & set(os.listdir(flags)):
    sys.exit("controller down")
with open(log, "a") as out:
    out.write(" ".join(["run", *words]) + "\\n")
time.sleep(float(pause))
"""


class Outbox:
    """An instance whose hc.toml runs the record script for exclude and recover."""

    def __init__(self, base: Path, database_url: str | None, pause: float = 0, timeout: float = 10,
                 action_timeout: float = 10, retries: int = 8, backoff: float = 0.5) -> None:
        self.base, self.log, self.flags = base, base / "actions.log", base / "flags"
        self.flags.mkdir(parents=True)
        script = base / "record.py"
        script.write_text(RECORD)
        argv = [sys.executable, str(script), str(self.log), str(self.flags), str(pause), "{event}", "{queue}",
                "{delivery}"]
        entry = f"{{type = \"command\", argv = {json.dumps(argv)}, timeout = {timeout}}}"
        self.instance = base / "instance"
        self.instance.mkdir()
        top = f'database_url = "{database_url}"\n' if database_url else ""
        (self.instance / "hc.toml").write_text(
            f'{top}secret_key = "outbox-test"\n[robot]\naction_timeout = {action_timeout}\n'
            f"action_retries = {retries}\naction_backoff_seconds = {backoff}\n"
            f"[robot.actions.local]\nexclude = [{entry}]\nrecover = [{entry}]\n")
        self.app = make_app(self.instance, **({"DATABASE_URL": database_url} if database_url else {}))

    def event(self, kind: str, queue: str) -> int:
        with self.app.app_context():
            event = RobotEvent(kind=kind, queue=queue, backend="local", rule="test", message=f"{kind} {queue}")
            db.session.add(event)
            db.session.flush()
            enqueue(event, event_data(event))
            db.session.commit()
            return event.id

    def runs(self) -> list[str]:
        """``<event> <queue>`` per run, in the order they ran."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [" ".join(line.split()[1:3]) for line in lines]

    def rows(self) -> list[Delivery]:
        with self.app.app_context():
            rows = list(db.session.scalars(select(Delivery).order_by(Delivery.id)))
            db.session.expunge_all()
            return rows

    def deliverer(self, seconds: float) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "tests.engine.deliverer", str(self.instance), str(seconds)],
                                cwd=ROOT, env={**os.environ, "HC_INSTANCE": str(self.instance)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def close(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    """None for the instance's SQLite file, else a fresh database on the real PostgreSQL."""
    return request.getfixturevalue("postgres").create_database() if request.param == "postgres" else None


@pytest.fixture
def outbox(tmp_path: Path, database: str | None) -> Iterator[Outbox]:
    box = Outbox(tmp_path, database)
    yield box
    box.close()


def _wait(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.05)


def test_a_failed_delivery_holds_back_the_later_ones_of_its_queue_only(outbox: Outbox) -> None:
    (outbox.flags / "fail-q1").touch()
    outbox.event("exclude", "q1")
    outbox.event("recover", "q1")
    outbox.event("exclude", "q2")
    with outbox.app.app_context():
        assert deliver() == {"delivered": 1, "retry": 1, "failed": 0}
        assert outbox.runs() == ["exclude q2"], "q1's recover waits behind its failed exclude; q2 goes"
        (outbox.flags / "fail-q1").unlink()
        assert deliver() == {"delivered": 0, "retry": 0, "failed": 0}, "nothing runs while the head backs off"
        time.sleep(0.6)
        assert deliver() == {"delivered": 2, "retry": 0, "failed": 0}, "the head, then the rest of its lane"
    assert outbox.runs() == ["exclude q2", "exclude q1", "recover q1"]
    assert [(r.state, r.attempts) for r in outbox.rows()] == [("delivered", 2), ("delivered", 1), ("delivered", 1)]


def test_a_lane_moves_on_once_its_head_failed_for_good(tmp_path: Path, database: str | None) -> None:
    box = Outbox(tmp_path, database, retries=0)
    try:
        (box.flags / "fail-exclude-q1").touch()
        box.event("exclude", "q1")
        box.event("recover", "q1")
        with box.app.app_context():
            assert deliver() == {"delivered": 1, "retry": 0, "failed": 1}
        assert box.runs() == ["recover q1"]
        assert [r.state for r in box.rows()] == ["failed", "delivered"]
    finally:
        box.close()


def test_the_lane_of_an_action() -> None:
    """Every command of a queue shares a lane (an exclude, its undo and the recover may be different
    programs on one partition); a webhook has one per receiver; names given by admins do not matter."""
    exclude = RobotEvent(kind="exclude", queue="q1", backend="slurm")
    drain = {"type": "command", "argv": ["scontrol", "update", "State=DRAIN"], "undo": ["/opt/undrain"]}
    resume = {"type": "command", "argv": ["/usr/local/bin/resume", "{queue}"], "name": "resume"}
    hook = {"type": "webhook", "url": "https://chat.example:8443/hook?token=s3cret", "name": "chat"}
    assert ordering_key(exclude, drain) == ordering_key(exclude, resume) == "slurm/q1 command"
    assert ordering_key(exclude, {**drain, "argv": drain["undo"]}) == "slurm/q1 command"
    assert ordering_key(exclude, hook) == "slurm/q1 webhook https://chat.example:8443"
    assert ordering_key(RobotEvent(kind="alert_open", backend=None), hook) == "-/- webhook https://chat.example:8443"


def test_a_delivery_has_one_id_on_every_attempt(outbox: Outbox) -> None:
    (outbox.flags / "fail-q1").touch()
    outbox.event("exclude", "q1")
    with outbox.app.app_context():
        deliver()
    (outbox.flags / "fail-q1").unlink()
    time.sleep(0.6)
    with outbox.app.app_context():
        deliver()
    [row] = outbox.rows()
    assert (row.state, row.attempts) == ("delivered", 2)
    assert outbox.log.read_text().split() == ["run", "exclude", "q1", row.uid]
    assert len(row.uid) == 36 and row.to_dict()["delivery"] == row.uid


def test_an_attempt_counts_when_claimed_so_a_crash_loop_ends(tmp_path: Path, database: str | None) -> None:
    """The deliverer is killed (-9) while its action runs; after the claim's hold the next claim is the
    second attempt, past ``action_retries = 0``: the row fails for good, never run again."""
    box = Outbox(tmp_path, database, pause=2, timeout=1, retries=0)
    try:
        box.event("exclude", "q1")
        first = box.deliverer(30)
        _wait(lambda: box.runs() == ["exclude q1"], "the action started")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        [row] = box.rows()
        assert (row.state, row.attempts) == ("pending", 1), "the attempt counted when it was claimed"
        assert (row.next_attempt_at - row.created_at).total_seconds() >= 2 * 1 + 5 - 1, "held past its timeout"
        second = box.deliverer(12)
        try:
            _wait(lambda: box.rows()[0].state != "pending", "the second claim", timeout=15)
        finally:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
        [row] = box.rows()
        assert (row.state, row.attempts) == ("failed", 2)
        assert "none finished" in row.last_error
        assert box.runs() == ["exclude q1"], "not run again after the crash used up its attempts"
    finally:
        box.close()


def test_two_deliverers_never_run_one_row(tmp_path: Path, database: str | None) -> None:
    """The action's own timeout (20 s) is far longer than the global one (0.5 s): the second
    deliverer must not take the row while the first still runs it."""
    box = Outbox(tmp_path, database, pause=8, timeout=20, action_timeout=0.5)
    try:
        box.event("exclude", "q1")
        first = box.deliverer(1)
        _wait(lambda: box.runs() == ["exclude q1"], "the first deliverer runs the action")
        second = box.deliverer(9)
        assert second.wait(timeout=60) == 0 and first.wait(timeout=60) == 0
        [row] = box.rows()
        assert (row.state, row.attempts) == ("delivered", 1)
        assert box.runs() == ["exclude q1"], "one run, by one deliverer"
    finally:
        box.close()

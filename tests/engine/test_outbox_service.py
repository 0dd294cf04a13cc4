"""An alert's actions survive kill -9 of a real ``hc serve``: delivered once when the kill comes
between the alert's commit and its delivery, at least once (with one delivery id) when it comes
in the middle of the action.

The crash window is made real and certain with PostgreSQL's own locking: the
test holds ``LOCK TABLE robot_delivery IN EXCLUSIVE MODE`` (reads go on,
writes to the outbox wait), so the service's robot pass stops at the moment
it puts the alert's actions into the outbox.  The service is killed there,
the lock dropped, the service started again.  Had the alert committed before
its actions (the old order), the restarted robot finds the alert already
open and nothing is ever sent; committed together, neither survives the
kill, and the restarted pass raises the alert and sends it once.

The alert is a real one: the Slurm backend's commands are missing (an empty
``bin_dir``), so submission finds the backend unreachable.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Alert, Delivery, RobotEvent
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template
from tests.service import Served, write_config

RECORD = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"
# the first run hangs (the service is killed meanwhile), the next ones return at once
SLOW = RECORD + "; import time; time.sleep(30 if len(open(sys.argv[1]).readlines()) == 1 else 0)"


def _service_config(instance: Path, tmp_path: Path, argv: list[str], top: str = "", timeout: float = 10) -> Path:
    """An instance whose Slurm backend has no commands (so its alert opens) and whose alert action is ``argv``."""
    empty = tmp_path / "no-slurm"
    empty.mkdir()
    write_config(instance, extra_top=top, extra=(
        f'[backends.slurm]\nbin_dir = "{empty}"\ncommand_timeout = 5\n'
        f"[robot.actions.default]\nalert = [{{type = \"command\", argv = {json.dumps(argv)}, timeout = {timeout}}}]\n"))
    return empty


def test_kill_9_between_an_alerts_commit_and_its_delivery(postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database()
    instance, sent = tmp_path / "instance", tmp_path / "sent.log"
    argv = [sys.executable, "-c", RECORD, str(sent), "{event}", "{rule}", "{delivery}"]
    empty = _service_config(instance, tmp_path, argv, top=f'database_url = "{url}"')
    app = make_app(instance, DATABASE_URL=url,
                   BACKENDS={"local": {}, "slurm": {"bin_dir": str(empty)}, "panda": {}})
    with app.app_context():
        make_queue("sq", "slurm", partition="debug")
        actions.start_test(make_template("t", queues=["sq"]), actor="tests")
    locker = create_engine(url)
    lock = locker.connect()
    lock.execute(text("LOCK TABLE robot_delivery IN EXCLUSIVE MODE"))
    service = Served(instance, workers=1).start()
    try:
        def writer_waits() -> bool:
            with locker.connect() as probe:
                return bool(probe.scalar(text(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'robot_delivery'::regclass AND NOT granted")))

        service.wait(writer_waits, "the robot pass waits to write the alert's actions")
        service.kill9()
        lock.rollback()
        lock.close()
        service = Served(instance, workers=1).start()

        def lines() -> list[str]:
            return sent.read_text().splitlines() if sent.exists() else []

        service.wait(lines, "the alert's action delivered after the restart")
        time.sleep(3)  # more passes and action ticks: nothing more may be sent
        with app.app_context():
            db.session.expire_all()
            alert = db.session.scalars(select(Alert).where(Alert.key == "backend:slurm")).one()
            row = db.session.scalars(select(Delivery)).one()
            opened = db.session.scalar(select(func.count()).where(RobotEvent.kind == "alert_open"))
        assert lines() == [f"alert_open backend {row.uid}"], "delivered once"
        assert alert.is_open and opened == 1
        assert (row.state, row.attempts) == ("delivered", 1)
    finally:
        service.stop()
        locker.dispose()
        kill_local_jobs(instance)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.mark.slow
def test_kill_9_during_the_action_runs_it_again_with_the_same_delivery_id(tmp_path: Path) -> None:
    """At least once, honestly: the service dies while the action runs; after the claim's hold
    (twice the action's timeout plus 5 s) the restarted service claims it again, as attempt 2."""
    instance, sent = tmp_path / "instance", tmp_path / "sent.log"
    argv = [sys.executable, "-c", SLOW, str(sent), "{event}", "{rule}", "{delivery}"]
    empty = _service_config(instance, tmp_path, argv, timeout=2)
    app = make_app(instance, BACKENDS={"local": {}, "slurm": {"bin_dir": str(empty)}, "panda": {}})
    with app.app_context():
        make_queue("sq", "slurm", partition="debug")
        actions.start_test(make_template("t", queues=["sq"]), actor="tests")

    def lines() -> list[str]:
        return sent.read_text().splitlines() if sent.exists() else []

    def delivered() -> bool:
        with app.app_context():
            db.session.expire_all()
            return db.session.scalar(select(Delivery.state)) == "delivered"

    service = Served(instance, workers=1).start()
    try:
        service.wait(lines, "the action started")
        service.kill9()
        killed_at = time.monotonic()
        with app.app_context():
            row = db.session.scalars(select(Delivery)).one()
            assert (row.state, row.attempts) == ("pending", 1), "the attempt counted when it was claimed"
        service = Served(instance, workers=1).start()
        service.wait(delivered, "delivered after the claim's hold", timeout=60)
        assert time.monotonic() - killed_at >= 2 * 2 + 5 - 1, "never run again while the claim held"
        with app.app_context():
            row = db.session.scalars(select(Delivery)).one()
        assert row.attempts == 2
        assert lines() == [f"alert_open backend {row.uid}"] * 2, "run twice, one delivery id: the receiver drops one"
    finally:
        service.stop()
        kill_local_jobs(instance)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

"""An alert's actions survive kill -9 of a real ``hc serve`` (PostgreSQL), delivered once.

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

from sqlalchemy import create_engine, func, select, text

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Alert, Delivery, RobotEvent
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template
from tests.service import Served, write_config

RECORD = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"


def test_kill_9_between_an_alerts_commit_and_its_delivery(postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database()
    instance, empty, sent = tmp_path / "instance", tmp_path / "no-slurm", tmp_path / "sent.log"
    empty.mkdir()
    argv = [sys.executable, "-c", RECORD, str(sent), "{event}", "{rule}", "{delivery}"]
    write_config(instance, extra_top=f'database_url = "{url}"', extra=(
        f'[backends.slurm]\nbin_dir = "{empty}"\ncommand_timeout = 5\n'
        f"[robot.actions.default]\nalert = [{{type = \"command\", argv = {json.dumps(argv)}}}]\n"))
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

"""The scheduler of a real ``hc serve`` (gunicorn master, two workers, SQLite):
never lost, never two, ticks that do not wait on each other.

Real processes throughout: signals go to gunicorn, kill -9 to a worker, the
slow batch system is a real command that sleeps (tests/service.py), the
hanging webhook a real socket that accepts and never answers.
"""
from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.engine import actions
from hcflask.engine.notify import enqueue, event_data
from hcflask.extensions import db
from hcflask.models import Delivery, Job, RobotEvent, TickRun
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template
from tests.service import Hanging, Served, fake_slurm, write_config

JUDGED = ["succeeded", "failed"]


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "instance"
    kill_local_jobs(tmp_path / "instance")


def _app(instance: Path, **config: object) -> Flask:
    return make_app(instance, **config)


def _judged(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).where(Job.state.in_(JUDGED))) or 0)


def _tick_pid(app: Flask, name: str) -> int | None:
    with app.app_context():
        row = db.session.scalar(select(TickRun).where(TickRun.name == name))
        return row.pid if row else None


def test_hup_while_a_tick_is_blocked_leaves_exactly_one_scheduler(instance: Path, tmp_path: Path) -> None:
    fake = fake_slurm(tmp_path / "fake")
    slurm = {"bin_dir": str(fake), "command_timeout": 30}
    write_config(instance, extra=f'[backends.slurm]\nbin_dir = "{fake}"\ncommand_timeout = 30\n')
    app = _app(instance, BACKENDS={"local": {}, "slurm": slurm, "panda": {}})
    with app.app_context():
        make_queue("slow", "slurm", partition="debug")
        actions.start_test(make_template("t", queues=["slow"]), actor="tests")
    service = Served(instance, env={"FAKE_DIR": str(fake), "FAKE_SLEEP": "6"}).start()
    try:
        old = service.wait(lambda: service.schedulers(), "a scheduler")
        service.wait(lambda: (fake / "squeue.started").exists(), "the monitor tick blocked in squeue")
        service.signal(signal.SIGHUP)
        new = service.wait(lambda: (s := service.schedulers()) and s != old and s, "a new scheduler after HUP")
        assert len(new) == 1
        text = service.text()
        (old_pid,), (new_pid,) = old, new
        assert text.index(f"scheduler stopped (pid {old_pid})") < text.index(f"scheduler started (pid {new_pid})"), \
            "the new scheduler started before the old one had stopped"
        service.wait(lambda: _tick_pid(app, "core") == new_pid, "core ticks from the new scheduler")
        service.wait(lambda: _tick_pid(app, "submission") == new_pid, "submission ticks from the new scheduler")
        assert service.schedulers() == new
        assert "maximum number of running instances" not in service.text()
        assert len(re.findall(r"monitor tick still busy after \d+ s", service.text())) <= 2  # once per stuck run
    finally:
        service.stop()


def test_kill_9_of_the_scheduler_worker_moves_it_and_same_host_name_is_refused(instance: Path) -> None:
    write_config(instance)
    app = _app(instance)
    with app.app_context():
        make_queue("q1")
        actions.start_test(make_template("t", jobs_in_flight=2, script='echo "hc-ok value=1"'), actor="tests")
    service = Served(instance).start()
    try:
        (first,) = service.wait(lambda: service.schedulers(), "a scheduler")
        service.wait(lambda: _judged(app) >= 2, "jobs judged")
        assert service.holder() == first
        twin = Served(instance).start()
        assert twin.process is not None and twin.process.wait(timeout=60) != 0
        refused = twin.text()
        assert "host_name 'testhost' is held by another hc serve" in refused and "Traceback" not in refused
        judged = _judged(app)
        os.kill(first, signal.SIGKILL)
        (second,) = service.wait(lambda: (s := service.schedulers()) and first not in s and s, "a new scheduler")
        assert second != first and service.holder() == second
        service.wait(lambda: _judged(app) >= judged + 2, "jobs judged after the kill")
        status, body = service.health()
        assert status == 200 and body["status"] == "ok", body
    finally:
        service.stop()


@pytest.mark.slow
def test_a_hanging_webhook_delays_no_tick_and_is_delivered_once_it_answers(instance: Path) -> None:
    hook = Hanging()
    write_config(instance, extra=(
        "[robot]\naction_timeout = 2\naction_backoff_seconds = 0.5\naction_retries = 50\n"
        f'[robot.actions.default]\nalert = [{{type = "webhook", url = "{hook.url}"}}]\n'))
    app = _app(instance)
    with app.app_context():
        make_queue("q1")
        actions.start_test(make_template("t", script='echo "hc-ok value=1"'), actor="tests")
    service = Served(instance).start()
    try:
        service.wait(lambda: _judged(app) >= 1, "jobs judged")
        with app.app_context():
            event = RobotEvent(kind="alert_open", rule="outage", message="test alert")
            db.session.add(event)
            enqueue(event, event_data(event))
            db.session.commit()
        service.wait(lambda: len(hook.held) >= 2, "the webhook tried twice (and hung)")
        judged = _judged(app)
        service.wait(lambda: _judged(app) >= judged + 2, "jobs judged while the webhook hangs")
        with app.app_context():
            row = db.session.scalars(select(Delivery)).one()
            assert row.state == "pending" and row.attempts >= 1 and "no answer within 2 s" in row.last_error
        hook.answer.set()

        def delivered() -> bool:
            with app.app_context():
                return db.session.scalars(select(Delivery)).one().state == "delivered"

        service.wait(delivered, "delivered once the webhook answers")
        assert hook.answered == 1
    finally:
        service.stop()
        hook.close()

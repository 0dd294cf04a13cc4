"""The robot's actions on a real Slurm partition keep the order they were decided in.

``exclude`` drains the partition (``scontrol update ... State=DRAIN``), its
``undo`` and ``recover`` set it ``UP``.  The drain fails once because the
controller is stopped; meanwhile the queue recovers (or the outage guard
rolls the exclusion back) and the ``UP`` is queued behind it; the controller
comes back.  Delivered in commit order, the partition ends ``UP``; delivered
each on its own backoff, the late drain would leave it drained while hcflask
says ``online``.

The finished jobs are written through the monitor's judge by
:mod:`tests.engine.history` (the passes are placed at known times); the
robot passes, the outbox and the commands against Slurm are the real ones.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from slurm_cluster import SlurmCluster
from sqlalchemy import select

from hcflask.config import DICT_SECTIONS
from hcflask.engine.notify import deliver
from hcflask.engine.robot.robot import robot_pass
from hcflask.extensions import db
from hcflask.models import Delivery, Queue, RobotEvent
from tests.conftest import make_app
from tests.engine.history import base_time, jobs
from tests.factories import make_queue, make_template, make_test

pytestmark = pytest.mark.slurm
STEP = timedelta(minutes=10)
QUEUES = ["debug", "q1", "q2", "q3", "q4"]


def _scontrol(state: str) -> list[str]:
    return ["scontrol", "update", "PartitionName={queue}", f"State={state}"]


@pytest.fixture()
def robot_app(slurm: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    robot = {**DICT_SECTIONS["ROBOT"], "action_backoff_seconds": 10.0, "actions": {"slurm": {
        "exclude": [{"type": "command", "argv": _scontrol("DRAIN"), "undo": _scontrol("UP"), "timeout": 30}],
        "recover": [{"type": "command", "argv": _scontrol("UP"), "timeout": 30}]}}}
    app = make_app(tmp_path / "instance", ROBOT=robot, BACKENDS={"local": {}, "slurm": slurm.backend_config,
                                                                  "panda": {}})
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        if "slurmctld" not in slurm.procs:
            slurm.start_controller()
        slurm.run("scontrol", "update", "PartitionName=debug", "State=UP", check=False)
        _node_idle(slurm)


def _node_idle(slurm: SlurmCluster, timeout: float = 60) -> None:
    """After a controller restart the node takes a moment to register again (the next test
    validates its queues with ``sbatch --test-only``)."""
    deadline = time.monotonic() + timeout
    while not (states := slurm.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()) or any(
            state != "idle" for state in states):
        assert time.monotonic() < deadline, f"the node did not come back idle: {states}"
        time.sleep(0.5)


def _partition(slurm: SlurmCluster) -> str:
    out = slurm.run("scontrol", "show", "partition", "debug").stdout
    return next(w.split("=", 1)[1] for w in out.split() if w.startswith("State="))


def _status(name: str) -> str:
    db.session.expire_all()
    return db.session.scalars(select(Queue.status).where(Queue.name == name)).one()


@pytest.mark.parametrize("undone_by", ["recover", "rollback"])
def test_a_drain_that_failed_once_never_lands_after_its_undo(robot_app: Flask, slurm: SlurmCluster,
                                                             undone_by: str) -> None:
    for name in QUEUES:
        make_queue(name, "slurm", partition="debug")
    test = make_test(make_template("t1", QUEUES, autoexclusion=True, lifetime=86400), robot_app)
    t0 = base_time()
    jobs(test, QUEUES, True, t0 - timedelta(minutes=5), count=2)
    jobs(test, ["debug"], False, t0, count=3)
    assert robot_pass(now=t0)["excluded"] == 1 and _status("debug") == "excluded"

    slurm.stop_controller()
    assert deliver()["retry"] == 1, "the drain fails: the controller is down"

    t1 = t0 + STEP
    if undone_by == "recover":
        jobs(test, ["debug"], True, t1, count=2)
        assert robot_pass(now=t1)["recovered"] == 1
    else:  # three of five failing alike: a central outage, and the exclusion is rolled back
        jobs(test, ["debug"], False, t1)
        jobs(test, ["q1", "q2"], False, t1, count=3)
        assert robot_pass(now=t1)["rolled_back"] == 1
    assert _status("debug") == "online"

    slurm.start_controller()
    deliver()  # the drain still backs off (10 s): the UP must wait for it
    drain, up = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    up_waited = up.attempts == 0
    deadline = time.monotonic() + 60
    while {r.state for r in db.session.scalars(select(Delivery))} != {"delivered"}:
        assert time.monotonic() < deadline, [r.to_dict() for r in db.session.scalars(select(Delivery))]
        time.sleep(0.5)
        deliver()
        db.session.expire_all()
    assert _partition(slurm) == "UP" and _status("debug") == "online"
    assert up_waited, "the UP waited while the drain before it backed off"
    ran = db.session.scalars(select(RobotEvent).where(RobotEvent.kind == "action").order_by(RobotEvent.id)).all()
    parents = [db.session.get_one(RobotEvent, r.parent_id).kind for r in ran]
    assert parents == ["exclude", undone_by] and all(r.ok for r in ran), "drain first, then UP"
    assert drain.attempts >= 2 and up.attempts == 1
    told = (slurm.root / "log" / "slurmctld.log").read_text()
    assert re.findall(r"setting state_up to (\d) for partition debug", told)[-2:] == ["2", "3"], \
        "Slurm's own log: DRAIN (2), then UP (3)"

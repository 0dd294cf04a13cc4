"""The c19outbox migration gives the outbox rows an existing database already has a delivery id
each and the lane their event and action give, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from sqlalchemy import select

from hcflask import create_app
from hcflask.extensions import db
from hcflask.models import Delivery
from tests.test_migration_backfill import put


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_upgrade_backfills_ids_and_lanes(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    config: dict[str, Any] = {"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x", "DEMO": False}
    if engine == "postgres":
        config["DATABASE_URL"] = request.getfixturevalue("postgres").create_database()
    app = create_app(config)
    at = datetime(2026, 11, 30, 12)
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision="c17jobtemplate")
        put("robot_event", [{"id": 1, "time": at, "kind": "exclude", "queue": "debug", "backend": "slurm",
                             "rule": "r", "actor": "robot", "message": "", "job_ids": [], "ok": True},
                            {"id": 2, "time": at, "kind": "alert_open", "queue": None, "backend": None,
                             "rule": "outage", "actor": "robot", "message": "", "job_ids": [], "ok": True}])
        row = {"action": "command", "config_key": "slurm.exclude.0", "fingerprint": "f", "target": "scontrol",
               "data": {}, "state": "pending", "attempts": 0, "last_error": "", "created_at": at,
               "next_attempt_at": at}
        put("robot_delivery", [{**row, "id": 1, "event_id": 1},
                               {**row, "id": 2, "event_id": 2, "action": "webhook", "target": "https://chat.example"}])
        db.session.commit()
        upgrade(directory=directory)
        rows = list(db.session.scalars(select(Delivery).order_by(Delivery.id)))
        assert [r.ordering_key for r in rows] == ["slurm/debug command", "-/- webhook https://chat.example"]
        assert len({r.uid for r in rows}) == 2 and all(len(r.uid) == 36 for r in rows)
        db.session.remove()
        db.engine.dispose()

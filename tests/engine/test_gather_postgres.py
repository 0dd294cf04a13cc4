"""The robot's gather on PostgreSQL (a LATERAL join there) returns what it
returns on SQLite, for the same history."""
from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from hcflask.engine.robot.snapshot import gather
from hcflask.extensions import db
from hcflask.models import Test, utcnow
from tests.conftest import make_app
from tests.scale_history import finish, new_job, setup


def outcomes(app: Flask) -> dict[Any, Any]:
    rng = random.Random(9)  # noqa: S311 - reproducible data
    with app.app_context():
        tests = setup(app, queues=4, templates=2)
        now = utcnow()
        for n in range(120):
            ended = now - timedelta(minutes=3 * n)
            finish(new_job(tests[n % 2], 1 + (n // 2) % 4, ended - timedelta(minutes=5), n), rng, ended)
        db.session.commit()
        found = gather({t.id: db.session.get(Test, t.id) for t in tests}, now - timedelta(hours=4), 3, now)
        result = {(q, t): [(o.job_id, o.ok) for o in items] for q, per in found.items() for t, items in per.items()}
        db.session.remove()
        db.engine.dispose()
        return result


def test_gather_agrees_on_sqlite_and_postgres(postgres: Any, tmp_path: Path) -> None:
    on_sqlite = outcomes(make_app(tmp_path / "lite"))
    on_postgres = outcomes(make_app(tmp_path / "pg", DATABASE_URL=postgres.create_database()))
    assert on_sqlite == on_postgres
    assert len(on_sqlite) == 8 and all(len(v) == 3 for v in on_sqlite.values())

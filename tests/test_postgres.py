"""hcflask on a real PostgreSQL server: the same migrations and engine, and
the scale-out seam (one core per database, tests driven by their host)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from hcflask.engine import actions
from hcflask.engine.core import core_tick
from hcflask.engine.lock import CoreLock
from hcflask.engine.submission import create_jobs
from hcflask.extensions import db
from hcflask.models import Job, Template, Test
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template, run_ticks


def test_migrations_and_a_job_on_postgres(postgres: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path / "instance", DATABASE_URL=postgres.create_database())
    try:
        with app.app_context():
            assert db.engine.dialect.name == "postgresql"
            with db.engine.connect() as connection:
                diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
            assert diff == []
            make_queue("q1")
            test = actions.start_test(make_template(max_jobs=2, jobs_in_flight=2), actor="tests")
            core_tick(app)
            run_ticks(app, lambda: db.session.scalars(select(Job.state)).all() == ["succeeded"] * 2)
            assert db.session.get(Test, test.id).state == "running"
            assert sorted(m.value for j in db.session.scalars(select(Job)) for m in j.metrics) == [42.0, 42.0]
    finally:
        kill_local_jobs(tmp_path / "instance")
        with app.app_context():
            db.engine.dispose()


def test_one_core_per_database_and_tests_driven_by_their_host(postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database()
    one = make_app(tmp_path / "one", DATABASE_URL=url, HOST_NAME="node-one")
    two = make_app(tmp_path / "two", DATABASE_URL=url, HOST_NAME="node-two")
    try:
        with one.app_context():
            lock_one = CoreLock(db.engine)
        with two.app_context():
            lock_two = CoreLock(db.engine)
        assert lock_one.acquire() and lock_one.acquire()
        assert not lock_two.acquire()
        lock_one.release()
        assert lock_two.acquire() and lock_two.held
        assert not lock_one.acquire()
        lock_two.release()

        with one.app_context():
            make_queue("q1")
            template = make_template()
            mine = actions.start_test(template, actor="tests").id
            theirs = actions.start_test(db.session.get(Template, template.id), actor="tests", host="node-two").id
            core_tick(one)  # the core starts both, each keeps its host
            assert db.session.get(Test, mine).host == "node-one"
            assert db.session.get(Test, theirs).host == "node-two"
            assert {j.test_id for j in create_jobs()} == {mine}
        with two.app_context():
            assert {j.test_id for j in create_jobs()} == {theirs}
    finally:
        for app, name in ((one, "one"), (two, "two")):
            kill_local_jobs(tmp_path / name)
            with app.app_context():
                db.engine.dispose()



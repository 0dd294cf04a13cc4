"""hcflask on a real PostgreSQL server: the same migrations and engine, and
the scale-out seam (one core per database, tests driven by their host)."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from hcflask.engine import actions
from hcflask.engine.jobs.submission import create_jobs
from hcflask.engine.service import clock, corelease, hosts
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Alert, Job, Queue, Template, Test, ValidationError
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
            role_one = corelease.CoreRole()
            assert role_one.acquire() and role_one.acquire() and role_one.epoch == 1
        with two.app_context():
            role_two = corelease.CoreRole()
            assert not role_two.acquire()
        with one.app_context():
            role_one.release()  # a clean stop ends the lease: the next host takes it at once
        with two.app_context():
            assert corelease.describe(clock.db_now())[1].startswith("no core: its last holder stopped")
            assert role_two.acquire() and role_two.epoch == 2
            assert db.session.scalars(select(Alert)).all() == [], "a clean stop is not a core that stopped answering"
        with one.app_context():
            assert not role_one.acquire()
            role_one.epoch = 1  # as if it had slept through the takeover: every commit is refused
            assert not role_one.renew(0.0) and not role_one.held
        with two.app_context():
            role_two.release()

        with two.app_context():
            hosts.claim()  # what hc serve on node-two does first
        with one.app_context():
            make_queue("q1")
            template = make_template()
            with pytest.raises(ValidationError, match="^host: unknown host 'nowhere' "):
                actions.start_test(template, actor="tests", host="nowhere")
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




def test_times_are_utc_whatever_the_server_time_zone(postgres: Any, tmp_path: Path) -> None:
    """Slurm gives aware times; with the database in America/New_York, 12:00Z must stay 12:00."""
    import psycopg
    from sqlalchemy import make_url

    url = postgres.create_database()
    with psycopg.connect(f"host={postgres.socket} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{make_url(url).database}\" SET timezone TO 'America/New_York'")
    app = make_app(tmp_path / "instance", DATABASE_URL=url)
    try:
        with app.app_context():
            assert db.session.scalar(text("SHOW timezone")) == "America/New_York"
            make_queue("q1")
            test = actions.start_test(make_template(), actor="tests")
            noon = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
            job = Job(test=test, queue=db.session.scalars(select(Queue)).one(), backend="local",
                      name="hc-tz-1", ended_at=noon, started_at=noon.astimezone(ZoneInfo("Europe/Zurich")))
            db.session.add(job)
            db.session.commit()
            db.session.expire_all()
            stored = db.session.get(Job, job.id)
            assert stored.ended_at == datetime(2026, 11, 25, 12, 0) and stored.started_at == stored.ended_at
            raw = db.session.scalar(text("SELECT to_char(ended_at, 'HH24:MI') FROM job WHERE id = :id"),
                                    {"id": job.id})
            assert raw == "12:00"
    finally:
        with app.app_context():
            db.engine.dispose()

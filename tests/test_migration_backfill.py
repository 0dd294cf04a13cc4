"""The c12rollups migration backfills the rollups from the job rows an
existing database already has; c16testcounts the per-test counts and the
tally of the rows retention deleted in between; c17jobtemplate each job's
template; c23auth turns is_admin into a role."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask_migrate import upgrade
from sqlalchemy import JSON, column, delete, insert, select, table

from hcflask import create_app
from hcflask.engine.data.rollups import job_rows
from hcflask.extensions import db
from hcflask.models import Rollup, RollupReason, RollupTest, RollupTotal, Tally


def put(name: str, rows: list[dict[str, Any]]) -> None:
    """Insert with only the columns the table had at that revision (the models have grown since)."""
    columns = [column(k, JSON) if isinstance(v, dict | list) else column(k) for k, v in rows[0].items()]
    db.session.execute(insert(table(name, *columns)), rows)


def test_upgrade_backfills_rollups(tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x", "DEMO": False})
    ended = datetime(2026, 3, 1, 12)
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision="c10status")
        put("queue", [{"id": 1, "name": "q1", "backend": "local", "status": "online", "autoexclusion": True,
                       "options": {}, "description": "", "created_at": ended}])
        put("template", [{"id": 1, "name": "t1", "description": "", "queues": ["q1"], "lifetime": 60,
                          "jobs_in_flight": 1, "max_jobs": 0, "max_running": 0, "autoexclusion": False,
                          "renew": False, "workload": {}, "active": True, "created_at": ended, "updated_at": ended}])
        put("test", [{"id": 1, "template_id": 1, "state": "completed", "queue_names": ["q1"], "created_by": "",
                      "note": "", "start_at": ended, "end_at": ended, "created_at": ended,
                      "snapshot": {"name": "t1", "workload": {"resources": {"cores": 4}}}}])
        put("job", [
            {"id": n, "test_id": 1, "queue_id": 1, "name": f"hc-old-{n}", "backend": "local",
             "state": "failed" if n % 3 == 0 else "succeeded", "failure_reason": "exit 1" if n % 3 == 0 else "",
             "native_state": "", "native_reason": "", "workdir": "", "submit_attempts": 1,
             "created_at": ended, "updated_at": ended, "started_at": ended + timedelta(minutes=n),
             "ended_at": ended + timedelta(minutes=n + 10)} for n in range(1, 10)])
        db.session.commit()
        upgrade(directory=directory, revision="c13stress")
        row = db.session.scalar(select(Rollup))
        assert (row.template, row.day.isoformat(), row.succeeded, row.failed) == ("t1", "2026-03-01", 6, 3)
        assert row.core_seconds == 9 * 600 * 4 and row.wall_seconds == 9 * 600
        assert row.known_seconds == 8 * 60  # one minute between each of the nine ends
        assert db.session.scalar(select(RollupReason.n)) == 3
        assert db.session.scalar(select(RollupTotal.succeeded)) == 6
        # retention, before c16, deletes two finished rows (a success and a failure)
        db.session.execute(delete(table("job", column("id"))).where(column("id").in_([2, 3])))
        db.session.commit()
        upgrade(directory=directory)
        tested = db.session.scalar(select(RollupTest))
        assert (tested.test_id, tested.queue_id, tested.succeeded, tested.failed) == (1, 1, 5, 2)
        tallies = dict(db.session.execute(select(Tally.name, Tally.n)).all())
        assert tallies == {"job_rows_purged:succeeded": 1, "job_rows_purged:failed": 1,
                           "job_rows_purged:cancelled": 0, "job_rows_purged:lost": 0}
        assert job_rows(db.session()) == 7 and job_rows(db.session(), ["failed"]) == 2
        # c17: each job carries its test's template
        assert set(db.session.scalars(select(column("template_id")).select_from(table("job")))) == {1}
        db.session.remove()
        db.engine.dispose()


def test_c23auth_keeps_admins_admins(tmp_path: Path) -> None:
    """``is_admin`` becomes ``role``: every user before roles existed stays what they were."""
    from hcflask.models import AuditEntry, User

    app = create_app({"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x", "DEMO": False})
    made = datetime(2026, 3, 1, 12)
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision="c17jobtemplate")
        put("user", [{"id": 1, "username": "root", "password_hash": "h", "is_admin": True, "created_at": made},
                     {"id": 2, "username": "reader", "password_hash": "h", "is_admin": False, "created_at": made}])
        put("audit_entry", [{"id": 1, "time": made, "actor": "cli", "action": "queue add", "target": "q1",
                             "status": 0, "remote_addr": "local"}])
        db.session.commit()
        upgrade(directory=directory, revision="c23auth")
        users = {u.username: (u.role, u.source, u.disabled, u.timezone) for u in db.session.scalars(select(User))}
        assert users == {"root": ("admin", "local", False, ""), "reader": ("viewer", "local", False, "")}
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.via, entry.reason) == ("", "")


def _c29(app: Any) -> None:
    """Rows written before c29names: two queues that differ only in case, a deleted queue whose name a
    new one took, a test on each, one test that never started."""
    from hcflask.models import Queue, Template, Test

    made = datetime(2026, 3, 1, 12)
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision="c27core")
        base = {"backend": "local", "status": "online", "autoexclusion": True, "options": {}, "description": "",
                "created_at": made}
        put("queue", [{"id": 1, "name": "site-a.deleted-1", **base, "deleted_at": made},
                      {"id": 2, "name": "site-a", **base, "deleted_at": None},
                      {"id": 3, "name": "SITE-A", **base, "deleted_at": None}])
        put("template", [{"id": 1, "name": "t1", "description": "", "queues": ["site-a"], "lifetime": 60,
                          "jobs_in_flight": 1, "max_jobs": 0, "max_running": 0, "autoexclusion": False,
                          "renew": False, "workload": {}, "active": True, "created_at": made, "updated_at": made}])
        snap = {"name": "t1", "workload": {"resources": {"cores": 1}}}
        put("test", [{"id": n, "template_id": 1, "state": state, "queue_names": names, "created_by": "",
                      "note": "", "start_at": made, "end_at": made, "created_at": made, "snapshot": snap}
                     for n, state, names in ((1, "completed", ["site-a"]), (2, "completed", ["site-a", "SITE-A"]),
                                             (3, "cancelled", []))])
        put("job", [{"id": n, "test_id": test, "queue_id": queue, "name": f"hc-old-{n}", "backend": "local",
                     "state": "succeeded", "failure_reason": "", "native_state": "", "native_reason": "",
                     "workdir": "", "submit_attempts": 1, "created_at": made, "updated_at": made,
                     "started_at": made, "ended_at": made} for n, test, queue in ((1, 1, 1), (2, 2, 2))])
        db.session.commit()
        upgrade(directory=directory, revision="c29names")
        keys = {q.id: q.name_key for q in db.session.scalars(select(Queue))}
        assert keys == {1: "site-a.deleted-1", 2: "site-a", 3: "site-a#3"}
        assert db.session.scalar(select(Template.name_key)) == "t1"
        ids = {t.id: t.queue_ids for t in db.session.scalars(select(Test))}
        # test 1 ran on the queue deleted since, test 2 on the queue that took its name (and SITE-A)
        assert ids == {1: [1], 2: [2, 3], 3: []}
        db.session.remove()
        db.engine.dispose()


def test_c29names_backfills_keys_and_queue_ids(tmp_path: Path) -> None:
    _c29(create_app({"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x", "DEMO": False}))


def test_c29names_on_postgres(postgres: Any, tmp_path: Path) -> None:
    _c29(create_app({"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x", "DEMO": False,
                     "DATABASE_URL": postgres.create_database()}))

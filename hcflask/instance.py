"""First start: the instance folder, its database and the demo.

Idempotent, so every start (and every CLI command) can call it: an empty
folder becomes a working instance; an existing one is only upgraded.  The
demo is seeded only into a database this call created, and by default not
into PostgreSQL (a shared scale-out database gets it only with
``hc init --demo``), so the core never runs demo jobs nobody asked for.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from hcflask.extensions import db

if TYPE_CHECKING:
    from flask import Flask

#: ``revision = "x"`` and ``down_revision = "y"`` (or a tuple, for a merge) of a migration file
REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=(.*)$", re.M)

DEMO_TEMPLATE = {
    "name": "demo",
    "description": "trivial job that prints one metric (seeded on first start)",
    "queues": ["local"],
    "lifetime": 86400,
    "jobs_in_flight": 2,
    "max_jobs": 0,
    "autoexclusion": False,
    "renew": True,
    "workload": {
        "script": (
            'echo "demo job $HC_JOB_ID of test $HC_TEST_ID on queue $HC_QUEUE ($(hostname))"\n'
            "sleep $(( RANDOM % 8 + 3 ))\n"
            'echo "hc-ok value=$(( RANDOM % 50 + 20 ))"\n'
        ),
        "resources": {"cores": 1, "memory_mb": 100, "walltime": 300},
        "success": {"exit_code": 0, "must_match": ["hc-ok"], "must_not_match": ["Traceback"]},
        "metrics": {"value": {"pattern": r"value=(?P<value>[0-9.]+)", "unit": ""}},
    },
}


#: the queue of the robot demo whose jobs fail now and then
FLAKY_QUEUE = "local-flaky"
#: drives auto-exclusion on two local queues: on local-flaky every job fails in
#: every other 5-minute slot, so within minutes the robot excludes it (3 failures
#: in a row) and puts it back (2 successes), with the jobs that decided it
DEMO_ROBOT_TEMPLATE = {
    "name": "demo-robot",
    "description": "drives the robot: on local-flaky its jobs fail every other 5 minutes (seeded on first start)",
    "queues": ["local", FLAKY_QUEUE],
    "lifetime": 86400,
    "jobs_in_flight": 1,
    "max_jobs": 0,
    "autoexclusion": True,
    "renew": True,
    "workload": {
        "script": (
            "sleep $(( RANDOM % 4 + 2 ))\n"
            f'if [ "$HC_QUEUE" = {FLAKY_QUEUE} ] && [ $(( $(date +%s) / 300 % 2 )) = 1 ]; then\n'
            '    echo "demo failure on $HC_QUEUE: the scratch area is full" >&2; exit 3\n'
            "fi\n"
            'echo "hc-ok seconds=$SECONDS"\n'
        ),
        "resources": {"cores": 1, "memory_mb": 100, "walltime": 120},
        "success": {"exit_code": 0, "must_match": ["hc-ok"], "must_not_match": []},
        "metrics": {"seconds": {"pattern": r"seconds=(?P<seconds>[0-9.]+)", "unit": "s"}},
    },
}


def ensure(app: Flask, demo: bool | None = None) -> bool:
    """Create folders, upgrade the database, seed the demo into a new one; True if seeded.

    ``demo`` None: the ``demo`` setting, but never on PostgreSQL.
    """
    Path(app.config["JOBS_ROOT"]).mkdir(parents=True, exist_ok=True)
    Path(app.instance_path, "logs").mkdir(parents=True, exist_ok=True)
    with app.app_context():
        fresh = not inspect(db.engine).has_table("alembic_version")
        if fresh or not at_newest_schema():
            from flask_migrate import upgrade

            from hcflask import migrations

            upgrade(directory=migrations(app))
        if demo is None:
            demo = app.config["DEMO"] and db.engine.dialect.name != "postgresql"
        if not (fresh and demo):
            return False
        seed_demo()
        return True


def schema_heads(versions: Path) -> set[str] | None:
    """The newest revision(s) of the migration files, read as text (no Alembic, no import of
    them: that costs a command more than its own work); None when a file cannot be read so."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        found = dict(REVISION.findall(path.read_text()))
        names = re.findall(r"[\"']([^\"']+)[\"']", found.get("revision", ""))
        if len(names) != 1 or "down_revision" not in found:
            return None
        revisions.add(names[0])
        parents.update(re.findall(r"[\"']([^\"']+)[\"']", found["down_revision"]))
    return (revisions - parents) or None


def at_newest_schema() -> bool:
    """Does the database stand at the newest revision?  Only a yes skips Alembic's upgrade; any
    doubt (a file not read, a database ahead, behind or on a branch) runs it."""
    from hcflask import _migrations_dir

    heads = schema_heads(_migrations_dir() / "versions")
    current = set(db.session.execute(text("SELECT version_num FROM alembic_version")).scalars())
    db.session.rollback()  # leave no read transaction open on SQLite before the command's writes
    return heads is not None and current == heads


def seed_demo() -> None:
    """The demo queues and templates (one call per object, so more are easy to add)."""
    from hcflask.engine.actions import create_queue, save_template

    create_queue("local", "local", description="this node (demo queue, seeded on first start)")
    create_queue(FLAKY_QUEUE, "local", description="this node again; the demo-robot jobs fail here now and then")
    save_template(DEMO_TEMPLATE)
    save_template(DEMO_ROBOT_TEMPLATE)

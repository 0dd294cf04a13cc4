"""First start: the instance folder, its database and the demo.

Idempotent, so every start (and every CLI command) can call it: an empty
folder becomes a working instance; an existing one is only upgraded.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from hcflask.extensions import db
from hcflask.models import Queue, Template

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


def ensure(app: Flask) -> bool:
    """Create folders, upgrade the database, seed the demo once; True if seeded."""
    Path(app.instance_path, "jobs").mkdir(parents=True, exist_ok=True)
    Path(app.instance_path, "logs").mkdir(parents=True, exist_ok=True)
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        if not app.config["DEMO"]:
            return False
        empty = not db.session.scalar(select(func.count()).select_from(Queue)) and not db.session.scalar(
            select(func.count()).select_from(Template)
        )
        if not empty:
            return False
        seed_demo()
        return True


def seed_demo() -> None:
    from hcflask.engine.actions import create_queue, save_template

    create_queue("local", "local", description="this node (demo queue, seeded on first start)")
    save_template(DEMO_TEMPLATE)

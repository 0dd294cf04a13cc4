"""``make_*`` helpers that build objects through the same code paths users hit."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from hcflask.engine import actions
from hcflask.engine.jobs.monitor import monitor_tick
from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Queue, Template, Test


def make_queue(name: str = "q1", backend: str = "local", **options: Any) -> Queue:
    return actions.create_queue(name, backend, options)


def template_doc(name: str = "t1", queues: list[str] | None = None, script: str = 'echo "hc-ok value=42"',
                 **overrides: Any) -> dict[str, Any]:
    workload = {
        "script": script,
        "resources": {"cores": 1, "walltime": 60},
        "success": {"exit_code": 0, "must_match": ["hc-ok"]},
        "metrics": {"value": {"pattern": r"value=(?P<value>[0-9.]+)", "unit": "s"}},
    }
    workload.update(overrides.pop("workload", {}))
    if workload.get("image"):
        workload.pop("script")  # a script and an image exclude each other
    return {"name": name, "queues": queues or ["q1"], "lifetime": 3600, "jobs_in_flight": 1,
            "workload": workload, **overrides}


def make_template(name: str = "t1", queues: list[str] | None = None, **kwargs: Any) -> Template:
    return actions.save_template(template_doc(name, queues, **kwargs))


def make_test(template: Template, app: Flask) -> Test:
    """A test, started by a real core tick."""
    test = actions.start_test(template, actor="tests")
    core_tick(app)
    db.session.refresh(test)
    return test


def run_ticks(app: Flask, until: Callable[[], bool], timeout: float = 30.0, pause: float = 0.2) -> None:
    """Run submission and monitor ticks until ``until()`` is true (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        submission_tick(app)
        monitor_tick(app)
        db.session.expire_all()
        if until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(pause)

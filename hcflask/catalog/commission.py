"""Commissioning a queue: every probe a few times on it, then one report.

A commissioning is a set of short stress tests (one per probe, ``runs``
jobs each, on that one queue), tied together by ``Test.created_by ==
"commission:<key>"``.  Stress tests never drive the robot, so commissioning
a queue never excludes it.  ``hc commission`` drives its tests itself, as a
host of its own (``<host_name>:commission:<pid>``, with a lease like any
``hc serve``), so it works with or without a service running; the UI's
*Commission* button leaves them to the service's core like any other test.

The verdict of a probe: *fail* if any of its jobs failed or was lost (or
none finished), else *pass* if any succeeded, else *not applicable*.  The
commissioning passes when no applicable probe failed.
"""
from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select

from hcflask import catalog
from hcflask.backends import jobscript
from hcflask.extensions import db
from hcflask.models import Job, JobMetric, Queue, Template, Test, ValidationError, iso, utcnow
from hcflask.states import IN_FLIGHT, JobState, TestState
from hcflask.web.distributions import summary

#: the tag of a commissioning's tests (``Test.created_by``)
TAG = "commission:"
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not applicable"
FACT_PREFIX = "hc-fact "


def templates_for(names: list[str]) -> list[Template]:
    """The templates of ``names``: catalogue probes (installed with their defaults when missing),
    or any other template by its name (a stress template keeps its own ramp and ``max_jobs``)."""
    from hcflask.engine.actions import save_template

    known = {p.name for p in catalog.probes()}
    out = []
    for name in names:
        if name.removeprefix(catalog.PREFIX) in known:
            probe = catalog.get(name, "probes")
            template = db.session.scalar(select(Template).where(Template.name == probe.template_name))
            out.append(template or save_template(catalog.render(probe)))
            continue
        template = db.session.scalar(select(Template).where(Template.name == name))
        if template is None:
            raise ValidationError("probes", f"{name!r} is neither a probe of the catalogue "
                                            f"({', '.join(sorted(known))}) nor a template")
        out.append(template)
    return out


def is_probe(test: Test) -> bool:
    return test.template_name.startswith(catalog.PREFIX)


def start(queue_name: str, names: list[str] | None = None, runs: int = 1, timeout: int = 1800,
          host: str | None = None, actor: str = "cli") -> str:
    """Create the tests of a commissioning of ``queue_name``; its key.

    ``host`` given: the tests run at once on that host (``hc commission``
    drives them); None: they are scheduled for the core like any test.
    """
    queue = db.session.scalar(Queue.live().where(Queue.name == queue_name))
    if queue is None:
        known = ", ".join(db.session.scalars(Queue.live().with_only_columns(Queue.name).order_by(Queue.name)))
        raise ValidationError("queue", f"no queue {queue_name!r} (known: {known or 'none'})")
    if not 1 <= runs <= 100:
        raise ValidationError("runs", f"must be from 1 to 100, got {runs}")
    if not 60 <= timeout <= 7 * 86400:
        raise ValidationError("timeout", f"must be from 60 to 604800 seconds, got {timeout}")
    names = list(names or catalog.ORDER)
    templates = templates_for(names)
    key = uuid.uuid4().hex[:12]
    now = utcnow()
    for template in templates:
        test = Test.from_template(template, start_at=now, created_by=f"{TAG}{key}")
        db.session.add(test)  # before the template's backref autoflushes it
        snapshot = dict(test.snapshot)
        snapshot.update(queues=[queue.name], autoexclusion=False, renew=False, lifetime=timeout)
        if template.kind != "stress":  # a probe (or a functional template): `runs` jobs at once
            snapshot.update(kind="stress", stress={"ramp": [{"at": 0, "in_flight": runs}], "max_jobs": runs,
                                                   "abort_fail_rate": None})
        test.snapshot = snapshot
        test.end_at = now + timedelta(seconds=timeout)
        test.note = f"commissioning {key} of {queue.name} by {actor}"
        if host is not None:
            test.host = host
            test.set_queues([queue])
            test.state, test.started_at = TestState.RUNNING.value, now
        db.session.add(test)
    db.session.commit()
    return key


def tests_of(key: str) -> list[Test]:
    return list(db.session.scalars(select(Test).where(Test.created_by == f"{TAG}{key}").order_by(Test.id)))


def progress(key: str) -> dict[str, Any]:
    """Per probe: jobs per state, and whether the commissioning is over."""
    tests = tests_of(key)
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for test_id, state, n in db.session.execute(select(Job.test_id, Job.state, func.count()).where(
            Job.test_id.in_([t.id for t in tests])).group_by(Job.test_id, Job.state)):
        counts[test_id][state] = n
    rows = [{"probe": t.template_name.removeprefix(catalog.PREFIX), "test": t.id, "state": t.state,
             "jobs": dict(counts[t.id]), "runs": int(t.snapshot["stress"]["max_jobs"])} for t in tests]
    done = bool(tests) and all(TestState(t.state).final and not any(counts[t.id][s] for s in IN_FLIGHT)
                               for t in tests)
    return {"key": key, "probes": rows, "done": done}


def _end_mine(host: str) -> None:
    """End this host's commissioning tests that are complete or out of time."""
    from hcflask.engine.service.core import end_test

    now = utcnow()
    for test in db.session.scalars(select(Test).where(
            Test.host == host, Test.state == TestState.RUNNING.value, Test.created_by.like(f"{TAG}%"))):
        states = dict(db.session.execute(select(Job.state, func.count()).where(Job.test_id == test.id)
                                         .group_by(Job.state)).all())
        total, flying = sum(states.values()), sum(states.get(s, 0) for s in IN_FLIGHT)
        if total >= test.snapshot["stress"]["max_jobs"] and not flying:
            end_test(test, TestState.COMPLETED, f"all {total} probe jobs judged")
        elif test.end_at <= now:
            end_test(test, TestState.COMPLETED, "commissioning timeout: jobs still in flight are cancelled")
    db.session.commit()


def drive(app: Flask, key: str, on_progress: Callable[[dict[str, Any]], None], interval: float = 1.0) -> None:
    """Run the submission and monitor ticks for this process's host until the commissioning is over."""
    from hcflask.engine.jobs.monitor import monitor_tick
    from hcflask.engine.jobs.submission import submission_tick
    from hcflask.engine.service.hosts import claim

    host = str(current_app.config["HOST_NAME"])
    while True:
        claim()
        submission_tick(app)
        monitor_tick(app)
        db.session.expire_all()
        _end_mine(host)
        state = progress(key)
        on_progress(state)
        if state["done"]:
            return
        time.sleep(interval)


def abandon(app: Flask, key: str) -> None:
    """Interrupted: cancel the commissioning's tests and ask the backends to cancel their jobs."""
    from hcflask.engine.actions import cancel_test
    from hcflask.engine.jobs.submission import submission_tick

    db.session.rollback()
    for test in tests_of(key):
        if not TestState(test.state).final:
            cancel_test(test, "cli", f"commissioning {key} interrupted")
    submission_tick(app)  # cancels this host's leftover jobs


def commission_host() -> str:
    """The host name ``hc commission`` drives its tests as (set before anything runs)."""
    return f"{current_app.config['HOST_NAME']}:commission:{os.getpid()}"


def release_host() -> None:
    """Drop this process's lease (only its own: never another holder's of the same name)."""
    from hcflask.engine.service.hosts import service_id
    from hcflask.models import Host

    db.session.rollback()
    row = db.session.get(Host, str(current_app.config["HOST_NAME"]))
    if row is not None and row.service_id == service_id():
        db.session.delete(row)
        db.session.commit()


def facts(job: Job) -> dict[str, str]:
    """The ``hc-fact key=value`` lines of a job's output."""
    out: dict[str, str] = {}
    text = jobscript.ends(Path(job.workdir) / jobscript.STDOUT, 256 * 1024) if job.workdir else ""
    for line in text.splitlines():
        if line.startswith(FACT_PREFIX):
            name, _, value = line[len(FACT_PREFIX):].partition("=")
            out[name.strip()] = value.strip()
    return out


def verdict(states: Counter[str]) -> str:
    if states[JobState.FAILED.value] or states[JobState.LOST.value]:
        return FAIL
    if states[JobState.SUCCEEDED.value]:
        return PASS
    if states[JobState.NOT_APPLICABLE.value]:
        return NOT_APPLICABLE
    return FAIL  # nothing finished: cancelled by the timeout, or never ran


def report(key: str) -> dict[str, Any]:
    """The commissioning report as plain data (the CLI table, the JSON, the page and the file)."""
    tests = tests_of(key)
    if not tests:
        raise ValidationError("commission", f"no commissioning {key!r}")
    rows, node_facts = [], {}
    for test in tests:
        jobs = list(db.session.scalars(select(Job).where(Job.test_id == test.id).order_by(Job.id)))
        states = Counter(j.state for j in jobs)
        probe = test.template_name.removeprefix(catalog.PREFIX)
        judged = [j for j in jobs if j.state in (JobState.SUCCEEDED.value, JobState.FAILED.value)]
        values: dict[str, list[float]] = defaultdict(list)
        for name, value in db.session.execute(select(JobMetric.name, JobMetric.value).where(
                JobMetric.job_id.in_([j.id for j in judged]))):
            values[name].append(value)
        metrics = []
        for name, spec in (test.workload.get("metrics") or {}).items():
            ref = spec.get("reference") or {}
            got = values.get(name, [])
            outside = sum(1 for v in got
                          if ("lower" in ref and v < ref["lower"]) or ("upper" in ref and v > ref["upper"]))
            metrics.append({"metric": name, "unit": spec.get("unit") or "", "summary": summary(got),
                            "lower": ref.get("lower"), "upper": ref.get("upper"), "outside": outside})
        first = next((j for j in jobs if j.state in (JobState.SUCCEEDED.value, JobState.NOT_APPLICABLE.value,
                                                     JobState.FAILED.value)), None)
        probe_facts = facts(first) if first else {}
        if probe == "node":
            node_facts = probe_facts
        reasons = Counter(j.failure_reason or j.state for j in jobs if j.state != JobState.SUCCEEDED.value)
        rows.append({
            "probe": probe, "template": test.template_name, "test": test.id, "state": test.state,
            "stress": _stress(test),
            "verdict": verdict(states), "jobs": dict(states), "runs": int(test.snapshot["stress"]["max_jobs"]),
            "reasons": [{"reason": r, "count": n} for r, n in reasons.most_common(5)],
            "metrics": metrics, "facts": probe_facts,
            "hosts": sorted({j.host for j in jobs if j.host}),
        })
    started = min((t.started_at or t.start_at) for t in tests)
    ends = [t.finished_at for t in tests]
    finished = max(e for e in ends if e is not None) if all(ends) else None
    return {
        "key": key, "queue": tests[0].snapshot["queues"][0], "started_at": iso(started),
        "finished_at": iso(finished), "seconds": round((finished - started).total_seconds(), 1) if finished else None,
        "probes": rows, "node_facts": node_facts, "passed": all(r["verdict"] != FAIL for r in rows),
        "failed": [r["probe"] for r in rows if r["verdict"] == FAIL], "generated_at": iso(utcnow()),
    }


def _stress(test: Test) -> dict[str, Any] | None:
    """A stress template's results on the queue (the test report's queue row and ramp steps)."""
    if is_probe(test):
        return None
    from hcflask.web import report as test_report

    built = test_report.build(test)
    queue = built["queues"][0] if built["queues"] else {}
    return {"success_rate": queue.get("success_rate"), "judged": queue.get("judged"),
            "distributions": queue.get("distributions", {}), "steps": built["stress"] or []}


def latest(queue: Queue, limit: int = 5, scan: int = 1000) -> list[dict[str, Any]]:
    """The queue's last commissionings (key, when, how many probes) for its page, from the
    newest ``scan`` commissioning tests (a test's note changes when it ends; its snapshot does not).
    A started test is the queue's by id (a deleted queue's commissionings never pass to a new
    queue of the same name); one not started yet by the name it will run on."""
    found: dict[str, dict[str, Any]] = {}
    for test in db.session.scalars(select(Test).where(Test.created_by.like(f"{TAG}%"))
                                   .order_by(Test.id.desc()).limit(scan)):
        ours = test.queue_ids == [queue.id] if test.queue_ids else (
            test.state == TestState.SCHEDULED.value and test.snapshot.get("queues") == [queue.name])
        if not ours:
            continue
        key = test.created_by.removeprefix(TAG)
        row = found.setdefault(key, {"key": key, "created_at": iso(test.created_at), "probes": 0})
        row["probes"] += 1
        if len(found) > limit:
            break
    return list(found.values())[:limit]

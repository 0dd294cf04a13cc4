"""Stress tests: the ramp, the abort rule and the live progress.

A stress test (``kind: stress``) keeps, per queue, the in-flight count of
the ramp step it is in (steps start ``at`` seconds after the test started)
and stops at ``max_jobs`` jobs per queue; it completes when every job is
judged.  ``abort_fail_rate`` stops submitting to one queue once more than
that share of its first :data:`FIRST_JUDGED` judged jobs failed: a broken
partition must not eat the whole slot while the others go on.  The queue
and the reason are kept in ``Test.aborted``.  A stress test never drives
the robot (the validator refuses ``autoexclusion`` and ``renew``).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from hcflask.extensions import db
from hcflask.models import Job, Test, utcnow
from hcflask.states import FINAL_JOB_STATES, IN_FLIGHT, JobState

#: the abort rule looks at this many of a queue's first judged jobs (fewer if max_jobs is smaller)
FIRST_JUDGED = 20
#: outcomes that say something about the queue (a cancelled job does not)
JUDGED = [JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.LOST.value]
FINAL = [s.value for s in FINAL_JOB_STATES]


def max_jobs(snapshot: dict[str, Any]) -> int:
    """Jobs per queue after which a test is complete (0: no limit)."""
    if snapshot.get("kind") == "stress":
        return int(snapshot["stress"]["max_jobs"])
    return int(snapshot.get("max_jobs") or 0)


def elapsed(test: Test, now: datetime | None = None) -> float:
    """Seconds since the start, up to the end once the test ended (an old test's page stays as it was)."""
    start = test.started_at or test.start_at
    return max(0.0, ((test.finished_at or now or utcnow()) - start).total_seconds())


def step_index(ramp: list[dict[str, int]], seconds: float) -> int:
    """The ramp step in force ``seconds`` after the start (the last one begun; -1 before the first)."""
    begun = [i for i, step in enumerate(ramp) if step["at"] <= seconds]
    return begun[-1] if begun else -1


def jobs_needed(test: Test, queue: str, in_flight: int, total: int, now: datetime) -> int:
    """New jobs one queue of a stress test needs now: the ramp's in-flight, up to max_jobs."""
    if queue in (test.aborted or {}):
        return 0
    stress = test.snapshot["stress"]
    index = step_index(stress["ramp"], elapsed(test, now))
    asked = stress["ramp"][index]["in_flight"] if index >= 0 else 0
    return max(0, min(asked - in_flight, stress["max_jobs"] - total))


def check_aborts(tests: list[Test]) -> list[tuple[int, str]]:
    """Apply ``abort_fail_rate`` to every queue of these stress tests; the (test, queue) aborted now."""
    aborted = []
    for test in tests:
        stress = test.snapshot.get("stress") or {}
        rate = stress.get("abort_fail_rate")
        if rate is None:
            continue
        window = min(FIRST_JUDGED, int(stress["max_jobs"]))
        for queue, outcomes in _first_judged(test, window).items():
            failed = [reason for state, reason in outcomes if state != JobState.SUCCEEDED.value]
            if queue in (test.aborted or {}) or len(failed) <= rate * window:
                continue
            common, count = Counter(failed).most_common(1)[0]
            test.aborted = {**(test.aborted or {}), queue: (
                f"{len(failed)} of its first {len(outcomes)} judged jobs failed, more than "
                f"{rate:.0%} of {window}; most often ({count}x): {common or 'no reason'}")}
            aborted.append((test.id, queue))
    return aborted


def _first_judged(test: Test, window: int) -> dict[str, list[tuple[str, str]]]:
    rows = db.session.execute(
        select(Job.queue_id, Job.state, Job.failure_reason)
        .where(Job.test_id == test.id, Job.state.in_(JUDGED))
        .order_by(Job.ended_at, Job.id)
    )
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for queue_id, state, reason in rows:
        name = test.name_of(queue_id, str(queue_id))  # ``aborted`` is keyed by the name then
        if len(out[name]) < window:
            out[name].append((state, reason))
    return out


def progress(test: Test) -> dict[str, Any] | None:
    """Live progress of a stress test (None for a functional one): judged of max_jobs,
    the ramp step, the queues aborted and why."""
    stress = test.snapshot.get("stress")
    if test.kind != "stress" or not stress:
        return None
    ramp = stress["ramp"]
    index = step_index(ramp, elapsed(test) if test.started_at else -1.0)
    step = ramp[index] if index >= 0 else {"at": 0, "in_flight": 0}  # before the first step: nothing
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for queue_id, state, n in db.session.execute(
        select(Job.queue_id, Job.state, func.count()).where(Job.test_id == test.id)
        .group_by(Job.queue_id, Job.state)
    ):
        counts[queue_id][state] += n
    aborted = test.aborted or {}
    # by id, each queue under the name it had when the test started (a re-created name starts empty)
    queues = [{
        "queue": name,
        "judged": sum(counts[ident][s] for s in FINAL),
        "in_flight": sum(counts[ident][s] for s in IN_FLIGHT),
        "failed": sum(counts[ident][s] for s in (JobState.FAILED.value, JobState.LOST.value)),
        "max_jobs": stress["max_jobs"],
        "asked": 0 if name in aborted else step["in_flight"],
        "aborted": aborted.get(name),
    } for ident, name in zip(test.queue_ids or [], test.queue_names, strict=False)]
    return {
        "step": {"index": index, "of": len(ramp), **step,
                 "next_at": ramp[index + 1]["at"] if index + 1 < len(ramp) else None},
        "elapsed": round(elapsed(test)) if test.started_at else 0,
        "max_jobs": stress["max_jobs"], "abort_fail_rate": stress.get("abort_fail_rate"),
        "judged": sum(q["judged"] for q in queues), "total": stress["max_jobs"] * len(queues),
        "queues": queues, "aborted": aborted,
    }

"""``hc queue show`` and ``hc test show``: one object described, as ``kubectl describe``
and ``scontrol show`` do: its settings, why it is in its state, its counts, its
last jobs and what the robot last thought of it.

The facts come from the code the queue and test pages use (claims from
:func:`hcflask.engine.status.active_claims`, counts from
:mod:`hcflask.web.queries`, the robot's view from its last pass), so the
command and the page cannot disagree.  ``--json`` gives the same as a document.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hcflask.cli.common import utc
from hcflask.extensions import db
from hcflask.models import Job, Queue, QueueEvent, RobotState, Test, iso
from hcflask.states import IN_FLIGHT

#: jobs and events listed at most
RECENT = 10


def _counts(c: dict[str, Any]) -> str:
    """A :class:`~hcflask.web.queries.Counts` (as a dict) in the words of the test page's columns."""
    rate = "–" if c["fail_percent"] is None else f"{c['fail_percent']:.1f}%"
    return (f"{c['total']} jobs: {c['submitted']} submitted, {c['running']} running, {c['completed']} completed, "
            f"{c['failed']} failed, {c['cancelled']} cancelled, {c['not_applicable']} n/a (fail {rate})")


def _job(job: Job) -> dict[str, Any]:
    return {"id": job.id, "test": job.test_id, "queue": job.queue.name, "state": job.state,
            "ended_at": iso(job.ended_at), "exit_code": job.exit_code, "failure_reason": job.failure_reason or ""}


def _runs_on(test: Test, queue: Queue) -> bool:
    """By id once the test started (a queue re-created under the name is another queue); by name before."""
    if test.queue_ids:
        return queue.id in test.queue_ids
    return queue.name in (test.queue_names or [])


def queue_facts(queue: Queue) -> dict[str, Any]:
    """Everything ``hc queue show`` says about ``queue``."""
    from hcflask.engine.status import SOURCES, active_claims

    claims = sorted(active_claims([queue.id]).get(queue.id, []), key=lambda c: SOURCES.index(c.source))
    jobs = list(db.session.scalars(select(Job).where(Job.queue_id == queue.id).order_by(Job.id.desc())
                                   .limit(RECENT)))
    events = list(db.session.scalars(select(QueueEvent).where(QueueEvent.queue_id == queue.id)
                                     .order_by(QueueEvent.id.desc()).limit(RECENT)))
    in_flight = db.session.scalar(select(func.count()).select_from(Job).where(
        Job.queue_id == queue.id, Job.state.in_(IN_FLIGHT)))
    tests = [t for t in db.session.scalars(select(Test).where(Test.state.in_(("scheduled", "running")))
                                           .order_by(Test.id)) if _runs_on(t, queue)]
    robot = (RobotState.get().last_summary or {}).get(queue.name)
    return {
        **queue.to_dict(), "claims": [c.to_dict() for c in claims],
        "jobs_in_flight": in_flight or 0,
        "active_tests": [{"id": t.id, "template": t.template_name, "state": t.state} for t in tests],
        "recent_jobs": [_job(j) for j in jobs], "events": [e.to_dict() for e in events], "robot": robot,
    }


def queue_lines(facts: dict[str, Any]) -> list[str]:
    options = " ".join(f"{k}={v}" for k, v in sorted((facts.get("options") or {}).items())) or "-"
    lines = [f"Name:           {facts['name']}", f"Backend:        {facts['backend']}",
             f"Status:         {facts['status']}", f"Options:        {options}",
             f"Description:    {facts.get('description') or '-'}",
             f"Autoexclusion:  {'yes' if facts.get('autoexclusion') else 'no (the robot never excludes it)'}",
             f"Jobs in flight: {facts['jobs_in_flight']}",
             "Claims:" + ("" if facts["claims"] else "         none (online)")]
    lines += [f"  {c['source']:<8} {c['status']:<9} by {c['actor']} since {utc(c['since'])}"
              + (f": {c['reason']}" if c.get("reason") else "") for c in facts["claims"]]
    lines.append("Active tests:" + ("" if facts["active_tests"] else "   none"))
    lines += [f"  {t['id']:<6} {t['template']} ({t['state']})" for t in facts["active_tests"]]
    robot = facts.get("robot")
    if robot:
        outcomes = " ".join(f"{t}={o or '-'}" for t, o in (robot.get("templates") or {}).items())
        lines.append(f"Robot:          {robot.get('verdict', '') or '-'}"
                     + (f" ({robot['reason']})" if robot.get("reason") else "")
                     + (f" [{robot['held']}]" if robot.get("held") else "") + (f"; {outcomes}" if outcomes else ""))
    else:
        lines.append("Robot:          no verdict yet (not in its last pass)")
    lines += _jobs_lines(facts["recent_jobs"])
    lines.append("Events:" + ("" if facts["events"] else "         none"))
    lines += [f"  {utc(e['time'])}  {e['old_status']} -> {e['new_status']} by {e['actor']}"
              + (f": {e['reason']}" if e.get("reason") else "") for e in facts["events"]]
    return lines


def _jobs_lines(jobs: list[dict[str, Any]]) -> list[str]:
    lines = ["Recent jobs:" + ("" if jobs else "    none")]
    lines += [f"  {j['id']:<8} test {j['test']:<6} {j['queue']:<20} {j['state']:<10} {utc(j['ended_at'])}"
              + (f"  {j['failure_reason']}" if j["failure_reason"] else "") for j in jobs]
    return lines


def test_facts(test: Test) -> dict[str, Any]:
    """Everything ``hc test show`` says about ``test``."""
    from hcflask.engine.jobs import stress
    from hcflask.web import queries
    from hcflask.web.history import queue_refs

    refs = queue_refs(test) if test.queue_names else []  # by id: a queue deleted or renamed since shows as it was
    per_queue = queries.counts_by_queue(test.id)
    total = queries.counts_by_test([test.id])[test.id]
    jobs = list(db.session.scalars(select(Job).where(Job.test_id == test.id).order_by(Job.id.desc()).limit(RECENT)))
    summary = RobotState.get().last_summary or {}
    robot = {r.label: (summary.get(r.current) or {}).get("templates", {}).get(test.template_name)
             for r in refs if r.current}
    return {
        **{k: v for k, v in test.to_dict().items() if k != "snapshot"}, "queues_matched": [r.label for r in refs],
        "patterns": test.snapshot.get("queues", []), "jobs": total.to_dict(),
        "queues_jobs": {r.label: per_queue[r.id].to_dict() for r in refs if r.id in per_queue},
        "stress": stress.progress(test), "recent_jobs": [_job(j) for j in jobs],
        "robot": {name: outcome for name, outcome in robot.items() if outcome},
    }


def test_lines(facts: dict[str, Any]) -> list[str]:
    ended = facts.get("finished_at")
    matched = ", ".join(facts["queues_matched"]) or ("none" if facts["started_at"] or ended else "(at its start)")
    lines = [f"Test:           {facts['id']}", f"Template:       {facts['template']} ({facts['kind']})",
             f"State:          {facts['state']}" + (f": {facts['note']}" if facts.get("note") else ""),
             f"Host:           {facts.get('host') or '-'}",
             f"Created:        {utc(facts['created_at'])} by {facts.get('created_by') or '-'}",
             f"Start:          {utc(facts['start_at'])}", f"Started:        {utc(facts.get('started_at'))}",
             f"Planned end:    {utc(facts['end_at'])}", f"Finished:       {utc(ended)}",
             f"Queues:         {', '.join(facts['patterns'])} -> {matched}",
             f"Jobs:           {_counts(facts['jobs'])}"]
    lines += [f"  {name:<20} {_counts(c)}" for name, c in facts["queues_jobs"].items()]
    progress = facts.get("stress")
    if progress:
        step = progress["step"]
        lines.append(f"Stress:         step {step['index'] + 1} of {step['of']} ({step['in_flight']} in flight per "
                     f"queue), {progress['judged']} of {progress['total']} jobs judged")
    lines += [f"Aborted:        {queue}: {why}" for queue, why in sorted((facts.get("aborted") or {}).items())]
    if facts["robot"]:
        lines.append("Robot:          " + " ".join(f"{q}={o}" for q, o in sorted(facts["robot"].items())))
    else:
        lines.append("Robot:          " + ("never judges it (a stress test)" if facts["kind"] == "stress"
                                          else "no outcome of this template in its last pass"))
    return lines + _jobs_lines(facts["recent_jobs"])

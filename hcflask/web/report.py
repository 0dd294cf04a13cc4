"""The report of one test: what a site hands over after commissioning.

Per queue: success rate and failure reasons; queue wait (submit → start),
run time and CPU efficiency (CPU time / (wall × cores)) distributions; each
metric against its reference or band; the core-hours the test used (and
their share of the partition's CPUs over the test's time, where known).  For a
stress test also the throughput of every ramp step: jobs started per
minute and the in-flight reached against the in-flight asked for.

One test's jobs are read by the indexed ``test_id`` (a test is bounded; the
growing history is never scanned), as rows of the few columns the report uses
rather than ORM objects, and the metric bands of all its queues in one query:
``hc test report`` builds this in a fresh process, where loading a thousand
jobs as objects was a tenth of its time.  The same dictionary feeds the page,
the JSON and the self-contained HTML file, so the three always agree.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from hcflask.data.stagein import metric_specs
from hcflask.extensions import db
from hcflask.models import Job, JobMetric, Queue, Test, iso, utcnow
from hcflask.models.names import original_name
from hcflask.signatures import signature
from hcflask.states import JobState
from hcflask.web.cost import share
from hcflask.web.distributions import histogram, summary
from hcflask.web.history import QueueRef, queue_refs

if TYPE_CHECKING:
    from hcflask.models import MetricBand

JUDGED = (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.LOST.value)
#: the distributions every report shows, with their unit
BUILTIN = {"queue_wait": "s", "run_time": "s", "cpu_efficiency": ""}


class JobFacts(Protocol):
    """What the report reads of a job: a :class:`Job`, or a row of :data:`COLUMNS`."""

    @property
    def id(self) -> int: ...
    @property
    def queue_id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def failure_reason(self) -> str: ...
    @property
    def failure_signature(self) -> str: ...
    @property
    def cpu_seconds(self) -> float | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def submitted_at(self) -> datetime | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...


#: the columns of :class:`JobFacts`
COLUMNS = (Job.id, Job.queue_id, Job.state, Job.failure_reason, Job.failure_signature, Job.cpu_seconds,
           Job.created_at, Job.submitted_at, Job.started_at, Job.ended_at)


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def job_values(job: JobFacts, cores: int) -> dict[str, float]:
    """The built-in per-job figures that this job has (finished jobs only for run time)."""
    out: dict[str, float] = {}
    wait = seconds(job.submitted_at, job.started_at)
    if wait is not None:
        out["queue_wait"] = wait
    wall = seconds(job.started_at, job.ended_at) if JobState(job.state).final else None
    if wall is not None:
        out["run_time"] = wall
        out["core_seconds"] = wall * cores
        if job.cpu_seconds is not None and wall > 0:
            out["cpu_efficiency"] = job.cpu_seconds / (wall * cores)
    return out


def _jobs(test: Test) -> list[JobFacts]:
    rows: list[JobFacts] = list(db.session.execute(select(*COLUMNS).where(Job.test_id == test.id).order_by(Job.id)))
    return rows


def _metrics(test: Test) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for job_id, name, value in db.session.execute(
            select(JobMetric.job_id, JobMetric.name, JobMetric.value).join(Job).where(Job.test_id == test.id)):
        out[job_id][name] = value
    return out


def build(test: Test) -> dict[str, Any]:
    """The whole report as plain data (the JSON of the API).

    Jobs are grouped by their queue's id and each queue is shown by the name it had when the test
    started (web/history.py): deleting, renaming or re-creating a queue never changes an old report.
    """
    cores = int(test.workload["resources"].get("cores", 1))
    jobs = _jobs(test)
    metrics = _metrics(test)
    by_queue: dict[int, list[JobFacts]] = defaultdict(list)
    for job in jobs:
        by_queue[job.queue_id].append(job)
    refs = queue_refs(test) if test.queue_names else []
    listed = {r.id for r in refs}
    rows = {q.id: q for q in db.session.scalars(select(Queue).where(Queue.id.in_(listed | set(by_queue))))}
    for ident in sorted(set(by_queue) - listed):  # jobs on a queue the test did not list (not expected)
        row = rows[ident]
        refs.append(QueueRef(ident, original_name(row.name), None if row.deleted_at else row.name,
                             deleted=row.deleted_at is not None))
    bands = _bands(test, set(rows))
    queues = [_queue(test, ref, rows.get(ref.id or 0), by_queue.get(ref.id or 0, []), metrics, bands, cores)
              for ref in refs]
    plots = {key: _plot(histogram({q["label"]: q["values"].get(key, []) for q in queues}), unit)
             for key, unit in BUILTIN.items()}
    for name, spec in metric_specs(test.snapshot).items():
        plots[f"metric {name}"] = _plot(histogram({q["label"]: q["metric_values"].get(name, []) for q in queues}),
                                        spec.get("unit") or "")
    for q in queues:
        del q["values"], q["metric_values"]
    return {
        "test": {"id": test.id, "template": test.template_name, "kind": test.kind, "state": test.state,
                 "note": test.note, "started_at": iso(test.started_at), "finished_at": iso(test.finished_at),
                 "cores_per_job": cores, "generated_at": iso(utcnow())},
        "queues": queues,
        "plots": {k: v for k, v in plots.items() if v},
        "stress": _throughput(test, refs, by_queue, metrics) if test.kind == "stress" else None,
    }


def _plot(hist: dict[str, Any] | None, unit: str) -> dict[str, Any] | None:
    """A histogram with its unit: the plot needs the bin width and the unit as well as the edges."""
    return {**hist, "unit": unit} if hist else None


def _bands(test: Test, queue_ids: set[int]) -> dict[tuple[int, str], MetricBand]:
    """The metric bands of the test's template on ``queue_ids``, by queue id and metric."""
    if not queue_ids or not metric_specs(test.snapshot):
        return {}
    from hcflask.models import MetricBand  # the robot's models: declared only for a test with metrics

    return {(b.queue_id, b.metric): b for b in db.session.scalars(select(MetricBand).where(
        MetricBand.template == test.template_name, MetricBand.queue_id.in_(queue_ids)))}


def _queue(test: Test, ref: QueueRef, queue: Queue | None, jobs: list[JobFacts], metrics: dict[int, dict[str, float]],
           bands: dict[tuple[int, str], MetricBand], cores: int) -> dict[str, Any]:
    name = ref.name
    states = Counter(j.state for j in jobs)
    judged = sum(states[s] for s in JUDGED)
    # by signature, so a failure whose text names the node is one row, not one per node
    reasons = Counter(j.failure_signature or signature(j.failure_reason, name) or j.state
                      for j in jobs if j.state in JUDGED[1:])
    not_applicable = Counter(j.failure_reason or "not applicable" for j in jobs
                             if j.state == JobState.NOT_APPLICABLE.value)
    values: dict[str, list[float]] = defaultdict(list)
    metric_values: dict[str, list[float]] = defaultdict(list)  # apart: a metric may be called run_time too
    for job in jobs:
        for key, value in job_values(job, cores).items():
            values[key].append(value)
        if job.state in (JobState.SUCCEEDED.value, JobState.FAILED.value):
            for metric, value in metrics.get(job.id, {}).items():
                metric_values[metric].append(value)
    return {
        "queue": name, "queue_id": ref.id, "deleted": ref.deleted, "label": ref.label,
        "jobs": len(jobs), "states": dict(states), "judged": judged,
        "succeeded": states[JobState.SUCCEEDED.value],
        "success_rate": round(states[JobState.SUCCEEDED.value] / judged, 4) if judged else None,
        "failure_reasons": [{"reason": r, "count": n} for r, n in reasons.most_common(10)],
        # apart from judged: a probe that did not apply says nothing about the queue
        "not_applicable": sum(not_applicable.values()),
        "not_applicable_reasons": [{"reason": r, "count": n} for r, n in not_applicable.most_common(10)],
        "distributions": {key: summary(values.get(key, [])) for key in BUILTIN},
        "metrics": _metric_rows(test, queue.id if queue else None, metric_values, bands),
        "core_seconds": round(sum(values.get("core_seconds", [])), 1),
        "cpus": queue.cpus if queue else None,
        "capacity_share": share(sum(values.get("core_seconds", [])), queue.cpus if queue else None,
                                seconds(test.started_at, test.finished_at or utcnow()) or 0.0),
        "aborted": (test.aborted or {}).get(name),
        "values": values, "metric_values": metric_values,
    }


def _metric_rows(test: Test, queue_id: int | None, values: dict[str, list[float]],
                 bands: dict[tuple[int, str], MetricBand]) -> list[dict[str, Any]]:
    """Each workload metric's distribution, with its reference and band and how many fell outside."""
    rows = []
    for name, spec in metric_specs(test.snapshot).items():
        band = bands.get((queue_id, name)) if queue_id is not None else None
        ref = spec.get("reference") or {}
        low = ref.get("lower", band.lower if band else None)
        high = ref.get("upper", band.upper if band else None)
        got = values.get(name, [])
        rows.append({
            "metric": name, "unit": spec.get("unit", ""), "summary": summary(got),
            "reference": ref or None,
            "band": {"mean": band.mean, "lower": band.lower, "upper": band.upper} if band and band.mean else None,
            "against": "reference" if ref else "band" if band and band.mean else None,
            "outside": sum(1 for v in got if (low is not None and v < low) or (high is not None and v > high)),
        })
    return rows


def peak(spans: list[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> int:
    """Most spans open at one moment of [lo, hi) (a sweep; an end before a start at the same time)."""
    events = []
    for start, end in spans:
        start, end = max(start, lo), min(end, hi)
        if start < end:
            events += [(start, 1), (end, -1)]
    current = best = 0
    for _, delta in sorted(events):
        current += delta
        best = max(best, current)
    return best


def _throughput(test: Test, refs: list[QueueRef], by_queue: dict[int, list[JobFacts]],
                metrics: dict[int, dict[str, float]]) -> list[dict[str, Any]]:
    """Per ramp step and queue: jobs started per minute, in-flight reached against asked; for a test
    reading input data, the median stage-in MB/s per job of the jobs started in the step (the data-access
    stress test's question: how many concurrent readers before the MB/s per job drops)."""
    reads = bool(test.snapshot.get("inputs"))
    if test.started_at is None:
        return []
    ramp = test.snapshot["stress"]["ramp"]
    until = test.finished_at or utcnow()
    now = utcnow()
    rows = []
    for i, step in enumerate(ramp):
        lo = test.started_at + timedelta(seconds=step["at"])
        hi = min(until, test.started_at + timedelta(seconds=ramp[i + 1]["at"])) if i + 1 < len(ramp) else until
        if lo >= until:
            break
        minutes = max((hi - lo).total_seconds() / 60, 1e-9)
        per_queue = []
        for ref in refs:
            jobs = by_queue.get(ref.id or 0, [])
            begun = [j for j in jobs if j.started_at and lo <= j.started_at < hi]
            started = len(begun)
            rates = [metrics[j.id]["stagein_mb_per_s"] for j in begun if "stagein_mb_per_s" in metrics.get(j.id, {})]
            per_queue.append({
                **({"stagein_mb_per_s": round(statistics.median(rates), 3) if rates else None} if reads else {}),
                "queue": ref.name, "label": ref.label, "asked": step["in_flight"], "started": started,
                "started_per_minute": round(started / minutes, 2),
                "in_flight_reached": peak([(j.created_at, j.ended_at or now) for j in jobs], lo, hi),
                "running_reached": peak([(j.started_at, j.ended_at or now) for j in jobs if j.started_at], lo, hi),
            })
        rows.append({"step": i, "at": step["at"], "in_flight": step["in_flight"], "from": iso(lo), "to": iso(hi),
                     "seconds": round((hi - lo).total_seconds(), 1), "queues": per_queue})
    return rows

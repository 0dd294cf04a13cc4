"""Comparing two tests (before and after a change), or two queues of one
test, on one metric: medians, the difference with a 95 % bootstrap
interval, and a plain verdict.

``tests=A,B`` compares test B against test A (``queue=Q`` keeps one queue
of each); ``tests=A&queues=P,Q`` compares queue Q against queue P within
test A.  ``metric`` is ``run_time``, ``queue_wait``, ``cpu_efficiency`` or
one of the workload's metrics.  Only succeeded jobs count: a failure's run
time says nothing about speed.

A difference is significant when its 95 % interval leaves out zero *and*
it is at least ``min_effect`` (default 5 %) of A's median: two runs of
the same workload differ by a few milliseconds of start-up, and a
performance engineer asks about changes that matter.  ``min_effect=0``
asks about any difference at all.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from hcflask.data.stagein import metric_specs
from hcflask.extensions import db
from hcflask.models import Job, JobMetric, Test, ValidationError
from hcflask.states import JobState
from hcflask.web.distributions import bootstrap_difference, summary
from hcflask.web.report import BUILTIN, job_values

#: units of metrics where less is faster (the verdict says faster/slower rather than higher/lower)
TIME_UNITS = ("s", "sec", "seconds", "ms", "us", "min", "h")
#: the smallest difference, as a share of A's median, that a verdict calls faster or slower
MIN_EFFECT = 0.05
#: the most recent values of each side that are used (keeps the bootstrap quick on huge tests)
MAX_VALUES = 2000


@dataclasses.dataclass
class Side:
    test: Test
    queue: str | None

    @property
    def label(self) -> str:
        return f"test {self.test.id}" + (f" on {self.queue}" if self.queue else "")


def _int(raw: str, field: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValidationError(field, f"must be test ids separated by a comma, got {raw!r}") from None


def _test(test_id: int) -> Test:
    test = db.session.get(Test, test_id)
    if test is None:
        raise ValidationError("tests", f"no test {test_id}")
    return test


def _queues(raw: str, test: Test) -> list[str]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in test.queue_names:
            raise ValidationError("queues", f"test {test.id} has no queue {name!r} "
                                            f"(it has: {', '.join(test.queue_names) or 'none'})")
    return names


def _share(raw: str, field: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise ValidationError(field, f"must be a share between 0 and 1 (0.05 = 5 %), got {raw!r}")
    return value


def parse(args: Mapping[str, str]) -> tuple[list[Side], str, int]:
    """The two sides, the metric and the seed, or a ValidationError naming the field."""
    raw = (args.get("tests") or "").strip()
    if not raw:
        raise ValidationError("tests", "required: two test ids (tests=A,B), or one with queues=P,Q")
    ids = [_int(part, "tests") for part in raw.split(",") if part.strip()]
    if len(ids) not in (1, 2):
        raise ValidationError("tests", f"one or two test ids, got {len(ids)}")
    tests = [_test(i) for i in ids]
    if len(tests) == 1:
        queues = _queues(args.get("queues") or "", tests[0])
        if len(queues) != 2:
            raise ValidationError("queues", "with one test, name exactly two of its queues (queues=P,Q)")
        sides = [Side(tests[0], queues[0]), Side(tests[0], queues[1])]
    else:
        queue = (args.get("queue") or "").strip() or None
        if queue:
            for test in tests:
                _queues(queue, test)
        sides = [Side(t, queue) for t in tests]
    metric = (args.get("metric") or "").strip()
    known = sorted(set(BUILTIN) | {m for t in tests for m in metric_specs(t.snapshot)})
    if metric not in known:
        raise ValidationError("metric", f"one of {', '.join(known)}; got {metric!r}")
    seed = (args.get("seed") or "1").strip()
    if not seed.isdigit() or int(seed) > 2**31:
        raise ValidationError("seed", f"must be a whole number from 0 to 2^31, got {seed!r}")
    return sides, metric, int(seed)


def values(side: Side, metric: str) -> list[float]:
    """The metric's values over the side's succeeded jobs, newest last."""
    query = select(Job).where(Job.test_id == side.test.id, Job.state == JobState.SUCCEEDED.value)
    if side.queue:  # the queue the test knew by that name, by id: a re-created name is another queue
        ids = dict(zip(side.test.queue_names or [], side.test.queue_ids or [], strict=False))
        query = query.where(Job.queue_id == ids.get(side.queue, 0))
    jobs = list(db.session.scalars(query.order_by(Job.id.desc()).limit(MAX_VALUES)))[::-1]
    if metric not in BUILTIN:
        rows = db.session.execute(select(JobMetric.job_id, JobMetric.value).where(
            JobMetric.job_id.in_([j.id for j in jobs]), JobMetric.name == metric))
        found = dict(rows.all())
        return [found[j.id] for j in jobs if j.id in found]
    cores = int(side.test.workload["resources"].get("cores", 1))
    return [v[metric] for v in (job_values(j, cores) for j in jobs) if metric in v]


def unit_of(sides: list[Side], metric: str) -> str:
    if metric in BUILTIN:
        return BUILTIN[metric]
    spec = metric_specs(sides[-1].test.snapshot).get(metric) or {}
    return str(spec.get("unit") or "")


def compare(args: Mapping[str, str]) -> dict[str, Any]:
    """Side B against side A: medians, B - A with its 95 % interval, and the verdict."""
    sides, metric, seed = parse(args)
    data = [values(side, metric) for side in sides]
    for side, got in zip(sides, data, strict=True):
        if len(got) < 2:
            field = "queues" if side.queue and len(args.get("tests", "").split(",")) == 1 else "tests"
            raise ValidationError(field, f"{side.label} has {len(got)} succeeded job(s) with {metric}; "
                                         "at least 2 are needed")
    min_effect = _share(args.get("min_effect") or str(MIN_EFFECT), "min_effect")
    point, low, high = bootstrap_difference(data[0], data[1], seed=seed)
    unit = unit_of(sides, metric)
    a, b = (summary(d) or {} for d in data)
    small = abs(point) < min_effect * abs(a["median"])
    verdict = _verdict(low, high, small, timed=metric in ("run_time", "queue_wait") or unit in TIME_UNITS)
    return {
        "metric": metric, "unit": unit, "seed": seed, "min_effect": min_effect,
        "a": {"label": sides[0].label, "test": sides[0].test.id, "queue": sides[0].queue, **a},
        "b": {"label": sides[1].label, "test": sides[1].test.id, "queue": sides[1].queue, **b},
        "difference": {"value": round(point, 4), "low": round(low, 4), "high": round(high, 4),
                       "relative": round(point / a["median"], 4) if a.get("median") else None},
        "verdict": verdict,
        "sentence": _sentence(sides, verdict, metric),
    }


def _verdict(low: float, high: float, small: bool, *, timed: bool) -> str:
    if low <= 0 <= high or small:
        return "no significant difference"
    if timed:
        return "faster" if high < 0 else "slower"
    return "lower" if high < 0 else "higher"


def _sentence(sides: list[Side], verdict: str, metric: str) -> str:
    if verdict == "no significant difference":
        return f"{sides[1].label} and {sides[0].label}: no significant difference in {metric}."
    return f"{sides[1].label} is {verdict} than {sides[0].label} in {metric} (95 % bootstrap interval)."

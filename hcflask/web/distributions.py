"""Small statistics for the reports and the comparison: summaries,
histograms with shared bins, and a seeded bootstrap of a difference of
medians.  Pure functions of lists of numbers, so they are easy to test and
give the same answer every time."""
from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

#: resamples of the bootstrap; the interval's ends move by well under 1 % between seeds at this size
RESAMPLES = 2000


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of a sorted list."""
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


def summary(values: Sequence[float]) -> dict[str, Any] | None:
    """n, mean and the quantiles a reader of a distribution asks for (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    out: dict[str, Any] = {"n": len(ordered), "mean": statistics.fmean(ordered)}
    for name, q in (("min", 0), ("p5", 0.05), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p95", 0.95),
                    ("max", 1)):
        out[name] = percentile(ordered, q)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def histogram(groups: Mapping[str, Sequence[float]], bins: int = 20) -> dict[str, Any] | None:
    """Shared bins over every group, one count row per group (None without values)."""
    values = [v for group in groups.values() for v in group]
    if not values:
        return None
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    rows = []
    for label, group in groups.items():
        counts = [0] * bins
        for v in group:
            counts[min(int((v - low) / width), bins - 1)] += 1
        rows.append({"label": label, "counts": counts})
    return {"edges": [round(low + i * width, 6) for i in range(bins)], "width": width, "queues": rows}


def bootstrap_difference(a: Sequence[float], b: Sequence[float], seed: int = 1,
                         resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """median(b) - median(a) and its 95 % percentile-bootstrap interval.

    The generator is seeded, so the same data always give the same interval.
    """
    rng = random.Random(seed)  # noqa: S311 - statistics, not secrets: it must be reproducible
    diffs = sorted(
        statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))
        for _ in range(resamples)
    )
    point = statistics.median(b) - statistics.median(a)
    return point, percentile(diffs, 0.025), percentile(diffs, 0.975)

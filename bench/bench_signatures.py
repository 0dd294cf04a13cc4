"""Failure signatures on a corpus of realistic failure texts: one signature per cause?

    python bench/bench_signatures.py [--variants 1000]

60 causes (CVMFS, storage, stage-in, pilot, scheduler, out-of-memory, timeouts,
network, containers, GPU, MPI ...) from ``bench/failure_corpus.py``, each drawn
``--variants`` times with new variable parts (node names in six site styles,
IPv4/IPv6 addresses, ports, times, pids, job ids, paths, sizes).  Prints, for
hcflask's normaliser (``hcflask.signatures``) and, where it is installed, for
drain3 (the streaming log-template miner, default settings, fed the same texts
in a shuffled order): how many signatures each cause gives (goal: one), how
many causes end up sharing a signature (goal: none), and the cost per job.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.failure_corpus import CAUSES, variants  # noqa: E402
from hcflask.signatures import signature  # noqa: E402


def judge(name: str, rows: list[tuple[str, str]], key: Callable[[str], str], seconds: float) -> dict[str, object]:
    per_cause: dict[str, set[str]] = defaultdict(set)
    for cause, text in rows:
        per_cause[cause].add(key(text))
    owners: dict[str, set[str]] = defaultdict(set)
    for cause, keys in per_cause.items():
        for k in keys:
            owners[k].add(cause)
    counts = [len(keys) for keys in per_cause.values()]
    return {"method": name, "causes": len(per_cause), "one": sum(1 for c in counts if c == 1),
            "median": statistics.median(counts), "max": max(counts), "signatures": len(owners),
            "merged": sum(1 for causes in owners.values() if len(causes) > 1),
            "us_per_job": seconds / len(rows) * 1e6}


def run_hcflask(rows: list[tuple[str, str]]) -> dict[str, object]:
    started = time.perf_counter()
    keys = {text: signature(text) for _, text in rows}
    return judge("hcflask.signatures", rows, keys.__getitem__, time.perf_counter() - started)


def run_drain3(rows: list[tuple[str, str]]) -> dict[str, object] | None:
    try:
        from drain3 import TemplateMiner
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints that it found no drain3.ini
        miner = TemplateMiner()
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)  # noqa: S311 - reproducible order
    started = time.perf_counter()
    for _, text in shuffled:
        miner.add_log_message(text)
    seconds = time.perf_counter() - started

    def cluster(text: str) -> str:
        found = miner.match(text)
        return str(found.cluster_id) if found else "unmatched:" + text
    return judge("drain3 (defaults)", rows, cluster, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=1000, help="texts drawn per cause (default 1000)")
    args = parser.parse_args()
    rows = variants(args.variants)
    results = [r for r in (run_hcflask(rows), run_drain3(rows)) if r is not None]
    print(f"{len(CAUSES)} causes x {args.variants} variants = {len(rows)} failure texts")
    print(f"{'method':<20} {'causes':>6} {'one sig.':>8} {'median':>6} {'max':>4} {'signatures':>10} "
          f"{'merged':>6} {'us/job':>7}")
    for r in results:
        print(f"{r['method']:<20} {r['causes']:>6} {r['one']:>8} {r['median']:>6} {r['max']:>4} "
              f"{r['signatures']:>10} {r['merged']:>6} {r['us_per_job']:>7.1f}")
    if len(results) == 1:
        print("(pip install drain3 to compare with the streaming miner)")


if __name__ == "__main__":
    main()

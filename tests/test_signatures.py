"""Failure signatures: the same cause gives one signature whatever its variable parts, and
two causes never share one (the corpus of bench/failure_corpus.py, 60 causes)."""
from __future__ import annotations

from collections import defaultdict

import pytest

from bench.failure_corpus import CAUSES, variants
from hcflask.signatures import of_claim, signature


def test_every_cause_gives_one_signature_and_no_two_causes_share_one() -> None:
    found: dict[str, set[str]] = defaultdict(set)
    for cause, text in variants(50, seed=11):
        found[cause].add(signature(text))
    assert {c: s for c, s in found.items() if len(s) != 1} == {}
    owners = defaultdict(set)
    for cause, sigs in found.items():
        owners[next(iter(sigs))].add(cause)
    assert [c for c in owners.values() if len(c) > 1] == [] and len(owners) == len(CAUSES)


@pytest.mark.parametrize(("text", "queue", "expected"), [
    ("exit 3: disk full on site-a", "site-a", "exit 3: disk full on <queue>"),
    ("exit 3: cannot open /cvmfs/atlas.cern.ch on wn0412.site after 31 s",
     None, "exit 3: cannot open /cvmfs/atlas.cern.ch on <id> after <n>"),
    ("killed by signal 9 at 2026-12-03T08:25:02Z on 10.1.2.3:1094", None, "killed by signal 9 at <time> on <ip>"),
    ("[3011] no such file root://xrd.example.org:1094//data/f1 (0x7ffe12ab)", None,
     "[3011] no such file <url> (<hex>)"),
    ("write /scratch/job_123/out: No space left", None, "write /scratch/<n>/out: No space left"),
    ("", None, ""),
])
def test_what_is_kept_and_what_is_blanked(text: str, queue: str | None, expected: str) -> None:
    assert signature(text, queue) == expected


def test_a_signature_is_its_own_signature() -> None:
    """Claims made before signatures hold the old text with <queue>: of_claim() of either is stable."""
    for _cause, text in variants(3, seed=5):
        once = signature(text)
        assert signature(once) == once and of_claim(once) == once

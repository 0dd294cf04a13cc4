"""Which files each new job reads: replicas cached per test and queue, handed out round robin.

The submission tick calls :func:`prepare` first: it finds the running tests
of this host that read input data, and for each (test, queue) without a
fresh answer it asks the catalogue, with no database transaction open (a
slow Rucio must not hold SQLite's write lock).  The answers live in this
process (``app.extensions``), keyed by test id, so a renewed test (a new
id) asks again, and so does any test after ``[rucio] refresh_seconds``.

Job *n* of a test on a queue (counting all its jobs so far) gets files
``n*k .. n*k+k-1`` modulo the list (``k = files_per_job``): over time every
file is read, with no state beyond the job count.

* A queue Rucio has no replica for gets no jobs and a note on the test
  ("no input replica at RSE X for queue Q"), which the test page shows;
  the robot sees no job, so it counts nothing.
* Rucio unreachable: that test x queue gets no jobs until Rucio answers,
  nothing is failed, and one ``catalogue`` alert is open meanwhile.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import current_app
from sqlalchemy import select

from hcflask.data import catalogue
from hcflask.engine import notify
from hcflask.engine.common import end_transaction, log, my_host
from hcflask.engine.robot.alerts import close_alert, find_open, raise_alert
from hcflask.extensions import db
from hcflask.models import Queue, Test
from hcflask.states import TestState

CACHE = "hc_input_files"
ALERT_KEY = "catalogue:rucio"


@dataclasses.dataclass
class Answer:
    """The catalogue's answer for one test x queue: files, or why there are none."""

    files: list[dict[str, Any]]
    note: str = ""
    #: True: the catalogue did not answer (retry after ``retry_seconds``)
    outage: bool = False
    at: float = dataclasses.field(default_factory=time.monotonic)


def _cache() -> dict[tuple[int, str], Answer]:
    cache: dict[tuple[int, str], Answer] = current_app.extensions.setdefault(CACHE, {})
    return cache


def _stale(answer: Answer | None) -> bool:
    if answer is None:
        return True
    cfg = current_app.config
    age = time.monotonic() - answer.at
    return age >= float(cfg["RUCIO_RETRY_SECONDS"] if answer.outage else cfg["RUCIO_REFRESH_SECONDS"])


def prepare() -> None:
    """Ask the catalogue what the running tests of this host lack (outside any transaction)."""
    tests = [t for t in db.session.scalars(select(Test).where(
        Test.state == TestState.RUNNING.value, Test.host == my_host())) if t.snapshot.get("inputs")]
    cache = _cache()
    live = {t.id for t in tests}
    for key in [k for k in cache if k[0] not in live]:
        del cache[key]  # ended tests
    if not tests:
        return
    options = {q.id: q.options or {} for q in db.session.scalars(select(Queue))}
    # keyed by the name each queue had when its test started (Test.name_of), its options read by id
    todo = [(t.id, t.snapshot["inputs"], name, str(options.get(ident, {}).get("rse") or ""))
            for t in tests for ident, name in zip(t.queue_ids or [], t.queue_names, strict=False)
            if _stale(cache.get((t.id, name)))]
    if not todo:
        return
    end_transaction()
    answers, answered = _ask(todo)
    cache.update(answers)
    _record(tests, answers, answered)


def _ask(todo: list[tuple[int, dict[str, Any], str, str]]) -> tuple[dict[tuple[int, str], Answer], bool]:
    """The answers, and whether Rucio answered at least once (the outage is over)."""
    answers: dict[tuple[int, str], Answer] = {}
    answered = False
    rucio: Any = None
    down = ""
    for test_id, inputs, queue, rse in todo:
        key = (test_id, queue)
        if inputs.get("files"):
            answers[key] = Answer(catalogue.plain_files(inputs["files"]))
            continue
        if not rse:
            answers[key] = Answer([], f"queue {queue} has no rse option: no input replica can be chosen "
                                      f"for dataset {inputs['dataset']}")
            continue
        if down:
            answers[key] = Answer([], down, outage=True)
            continue
        try:
            rucio = rucio or catalogue.client(current_app.config)
            answers[key] = Answer(catalogue.replicas(rucio, inputs["dataset"], rse, inputs["protocols"]))
            answered = True
        except catalogue.NoReplicas as exc:
            answers[key] = Answer([], f"no input replica at RSE {rse} for queue {queue}: {exc}")
            answered = True
        except catalogue.CatalogueUnavailable as exc:
            down = str(exc)
            answers[key] = Answer([], down, outage=True)
    return answers, answered


def _record(tests: list[Test], answers: dict[tuple[int, str], Answer], answered: bool) -> None:
    """Notes on the tests (configuration), the catalogue alert (outage), one commit."""
    for test in tests:
        notes = dict(test.input_notes or {})
        for (test_id, queue), answer in answers.items():
            if test_id != test.id or answer.outage:
                continue
            if answer.note:
                notes[queue] = answer.note
            else:
                notes.pop(queue, None)
        if notes != (test.input_notes or {}):
            test.input_notes = notes
    outages = sorted({a.note for a in answers.values() if a.outage})
    event = None
    if outages:
        waiting = sorted({t for (t, _), a in answers.items() if a.outage})
        _alert, event = raise_alert(
            "catalogue", ALERT_KEY, "Rucio unreachable: tests with input data wait",
            f"{outages[0]}; waiting: test {', '.join(map(str, waiting))}")
        log.warning("Rucio unreachable, %d test(s) wait: %s", len(waiting), outages[0])
    elif answered and (alert := find_open(ALERT_KEY)) is not None:
        event = close_alert(alert, "Rucio answers again: submission resumed")
    if event is not None:
        notify.enqueue(event, notify.event_data(event))
    db.session.commit()


def ready(test: Test, queue: Queue) -> bool:
    """May this test submit to this queue now (always, without inputs)?"""
    if not test.snapshot.get("inputs"):
        return True
    answer = _cache().get((test.id, test.name_of(queue.id, queue.name)))
    return answer is not None and bool(answer.files)


def files_for(test: Test, queue: Queue, index: int) -> list[dict[str, Any]] | None:
    """The files of the test's ``index``-th job on this queue (None: the test reads none)."""
    inputs = test.snapshot.get("inputs")
    if not inputs:
        return None
    files = _cache()[(test.id, test.name_of(queue.id, queue.name))].files
    per_job = int(inputs.get("files_per_job") or 1)
    return [files[(index * per_job + i) % len(files)] for i in range(min(per_job, len(files)))]

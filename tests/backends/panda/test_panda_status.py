"""The PanDA state mapping and failure reasons on records PanDA cannot be made to produce.

The real server (test_panda_backend.py) produces finished, failed and
cancelled jobs; a state word from a newer server and a record with several
error sources cannot be produced there, so these use plain records.
"""
from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from hcflask.backends.panda_status import (
    CANCELLED_STATES,
    FAILED_STATES,
    QUEUED_STATES,
    RUNNING_STATES,
    SUCCEEDED_STATES,
    failure_reason,
    job_state,
    status_of,
)
from hcflask.states import JobState


def record(**fields):
    base = {"jobStatus": "failed", "computingSite": "Q", "modificationHost": "wn1", "startTime": "NULL",
            "endTime": datetime(2026, 1, 1, 12), "modificationTime": "NULL", "transExitCode": "NULL"}
    return SimpleNamespace(**{**base, **fields})


@pytest.mark.parametrize(("states", "expected"), [
    (QUEUED_STATES, JobState.QUEUED), (RUNNING_STATES, JobState.RUNNING), (SUCCEEDED_STATES, JobState.SUCCEEDED),
    (FAILED_STATES, JobState.FAILED), (CANCELLED_STATES, JobState.CANCELLED),
])
def test_every_native_state_maps(states, expected):
    assert {job_state(s) for s in states} == {expected}


def test_a_new_word_is_queued_never_a_failure():
    assert job_state("reassigning-v2") is JobState.QUEUED


def test_failure_reason_lists_every_source_most_specific_first():
    job = record(pilotErrorCode=1099, pilotErrorDiag="stage-in failed", ddmErrorCode=200, ddmErrorDiag="NULL",
                 taskBufferErrorCode="NULL", taskBufferErrorDiag="retried by the server")
    assert failure_reason(job) == (
        "pilot error 1099: stage-in failed; ddm error 200; server error 0: retried by the server"
    )


def test_closed_without_diagnostics_still_says_why():
    status = status_of(record(jobStatus="closed"))
    assert status.state is JobState.FAILED and status.reason == "closed in PanDA"
    assert status.ended_at == datetime(2026, 1, 1, 12) and status.host == "wn1" and status.exit_code is None

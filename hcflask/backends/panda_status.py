"""PanDA job records as hcflask statuses: the state mapping, failure reasons, metrics.

Native states (PanDA ``jobStatus``) and what they mean here, in the sets
below: waiting for a pilot (``pending defined assigned waiting activated
throttled``) or handed to one that has not started it (``sent``) is queued;
``starting running`` and the after-run steps ``holding transferring
merging`` (the payload ended, PanDA is still registering its output) are
running; ``finished`` succeeded; ``failed`` and ``closed`` (ended by the
system) failed; ``cancelled`` (killed) cancelled.  Unknown words count as
queued: a newer server's state never fails a job by itself.

The failure reason lists every error field PanDA filled, most specific
first (``pilot error 1305: ...; payload error 3: ...``): that is what a site
admin reads in PanDA's monitor too.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from hcflask.backends.base import Status
from hcflask.states import JobState

QUEUED_STATES = frozenset({"pending", "defined", "assigned", "waiting", "activated", "throttled", "sent"})
RUNNING_STATES = frozenset({"starting", "running", "holding", "transferring", "merging"})
SUCCEEDED_STATES = frozenset({"finished"})
FAILED_STATES = frozenset({"failed", "closed"})
CANCELLED_STATES = frozenset({"cancelled"})
#: (field prefix, label) of the error fields PanDA fills, most specific first
ERROR_FIELDS = (("pilotError", "pilot"), ("exeError", "payload"), ("supError", "supervisor"),
                ("ddmError", "ddm"), ("brokerageError", "brokerage"), ("jobDispatcherError", "dispatcher"),
                ("taskBufferError", "server"))


def as_number(value: Any) -> float | None:
    """A number from a PanDA field (the client fills empty ones with ``'NULL'``)."""
    try:
        return None if value in (None, "", "NULL") else float(value)
    except (TypeError, ValueError):
        return None


def as_text(value: Any) -> str:
    """A text field, '' for PanDA's empty markers."""
    return "" if value in (None, "NULL", "None") else str(value).strip()


def as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    try:
        return datetime.fromisoformat(str(value)) if as_text(value) else None
    except ValueError:
        return None


def job_state(native: str) -> JobState:
    """PanDA's ``jobStatus`` as an hcflask state (unknown words: queued, the safe side)."""
    for states, state in ((RUNNING_STATES, JobState.RUNNING), (SUCCEEDED_STATES, JobState.SUCCEEDED),
                          (FAILED_STATES, JobState.FAILED), (CANCELLED_STATES, JobState.CANCELLED)):
        if native in states:
            return state
    return JobState.QUEUED


def failure_reason(job: Any) -> str:
    """The error codes and diagnostics PanDA recorded, most specific first."""
    parts = []
    for prefix, label in ERROR_FIELDS:
        code = as_number(getattr(job, f"{prefix}Code", None))
        diag = as_text(getattr(job, f"{prefix}Diag", None))
        if code or diag:
            parts.append(f"{label} error {int(code or 0)}" + (f": {diag}" if diag else ""))
    return "; ".join(parts)


def status_of(job: Any) -> Status:
    """What hcflask keeps of one PanDA job record."""
    native = as_text(job.jobStatus)
    state = job_state(native)
    status = Status(state=state, native_state=native, host=as_text(job.modificationHost) or None,
                    started_at=as_datetime(job.startTime))
    if state in (JobState.QUEUED, JobState.RUNNING):
        status.reason = f"{native} at {as_text(job.computingSite)}"
        return status
    status.ended_at = as_datetime(job.endTime) or as_datetime(job.modificationTime)
    exit_code = as_number(job.transExitCode)
    status.exit_code = None if exit_code is None else int(exit_code)
    if state is not JobState.SUCCEEDED:
        status.reason = failure_reason(job) or f"{native} in PanDA"
    for name, attr in (("cpu_time", "cpuConsumptionTime"), ("events", "nEvents"), ("max_rss_kb", "maxRSS"),
                       ("cores", "actualCoreCount")):
        value = as_number(getattr(job, attr, None))
        if value is not None and (value or name == "cpu_time"):
            status.metrics[name] = value
    return status

"""The state words shared by models, engine and backends.

Kept in their own module so backends never import the database layer.
"""
from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """Life of one job: ``pending → submitted → queued → running → final``.

    ``pending`` means the row is written but the backend has not yet
    confirmed the submission; only that state can be double-submitted, so
    it is the one reconciliation looks at after a crash.
    """

    PENDING = "pending"
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    #: the probe does not apply where it ran (no GPU, no /cvmfs): ETF's UNKNOWN. Neither a
    #: success nor a failure, so the robot, bands and success rates never count it.
    NOT_APPLICABLE = "not_applicable"

    @property
    def final(self) -> bool:
        return self in FINAL_JOB_STATES



IN_FLIGHT_JOB_STATES = frozenset(
    {JobState.PENDING, JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING}
)
FINAL_JOB_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST, JobState.NOT_APPLICABLE}
)
#: the in-flight states as the strings stored in ``job.state`` (for ``IN`` filters)
IN_FLIGHT: list[str] = sorted(s.value for s in IN_FLIGHT_JOB_STATES)


class TestState(enum.StrEnum):
    """Life of one test: ``scheduled → running → completed`` or ``cancelled``/``error``."""

    __test__ = False  # not a pytest test class

    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ERROR = "error"

    @property
    def final(self) -> bool:
        return self in (TestState.COMPLETED, TestState.CANCELLED, TestState.ERROR)



class QueueStatus(enum.StrEnum):
    """``excluded`` is set only by the robot, ``offline`` only by an admin."""

    ONLINE = "online"
    EXCLUDED = "excluded"
    OFFLINE = "offline"
    TEST = "test"


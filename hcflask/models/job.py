"""Jobs, their state history and the metrics read from their output."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, event, text
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from hcflask.extensions import Model
from hcflask.models.common import iso, partial_index, utcnow
from hcflask.signatures import signature
from hcflask.states import JobState

#: ``session.info`` key of the event and metric rows of saved jobs waiting for the next flush
PENDING_ROWS = "hc_job_rows"


class FinalState(RuntimeError):
    """A writer tried to move a job out of a final state (it decided on a stale read)."""


class Job(Model):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_test_queue_state", "test_id", "queue_id", "state"),
        Index("ix_job_queue_ended", "queue_id", "ended_at"),
        # the pages' and the API's filters, newest first; retention by age
        Index("ix_job_test_id", "test_id", "id"),
        Index("ix_job_test_ended", "test_id", "ended_at"),  # a test's metric plots, newest first
        # the robot's newest outcomes per queue x test (without it, planners take the one above
        # and read every job of the test in the window: 140 ms a pass at HammerCloud scale)
        Index("ix_job_queue_test_ended", "queue_id", "test_id", "ended_at"),
        Index("ix_job_template_id", "template_id", "id"),  # /api/v1/jobs?template=, newest first
        Index("ix_job_queue_id", "queue_id", "id"),
        Index("ix_job_created_at", "created_at"),
        Index("ix_job_ended_at", "ended_at"),
        # work dirs retention has not removed yet: only the last weeks' jobs
        partial_index("ix_job_workdir_ended", "ended_at", where="workdir != ''"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id"))
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"))
    #: the test's template, copied here so the jobs of a template are one index range
    #: (set on insert from the test; cleared when the template is deleted)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("template.id"))
    #: hc-<instance>-<job id>; unique so a crash can be reconciled by name
    name: Mapped[str] = mapped_column(String(128), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING.value, index=True)
    backend: Mapped[str] = mapped_column(String(32))
    backend_id: Mapped[str | None] = mapped_column(String(128), index=True)
    native_state: Mapped[str] = mapped_column(String(64), default="")
    #: the batch system's own words while waiting (e.g. Slurm's pending reason)
    native_reason: Mapped[str] = mapped_column(Text, default="")
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    #: the reason without its variable parts (node, address, time, queue ...): what the robot
    #: groups by (:mod:`hcflask.signatures`); '' for a success
    failure_signature: Mapped[str] = mapped_column(String(200), default="", server_default="")
    exit_code: Mapped[int | None]
    host: Mapped[str | None] = mapped_column(String(255))
    workdir: Mapped[str] = mapped_column(Text, default="")
    submit_attempts: Mapped[int] = mapped_column(default=0)
    #: the process (``service_id``/pid) that last claimed the job for a backend call: reconcile
    #: leaves a job claimed by its own process to that process's submission thread
    claimed_by: Mapped[str] = mapped_column(String(128), default="", server_default="")
    #: grows on every write: each UPDATE of a job is ``... WHERE id = :id AND version = :seen``
    #: (the mapper's ``version_id_col``), so a writer whose job changed under it is refused
    #: (StaleDataError) and re-reads instead of acting on a state that is gone
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    #: CPU seconds of the payload (the wrapper's ``times``, or Slurm's TotalCPU)
    cpu_seconds: Mapped[float | None]
    #: the input files this job reads (hcflask.data): [{"name", "url", "adler32", "bytes", "rse"}, plus "scope",
    #: "lfn" and "guid" for Rucio files], or None
    inputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    #: when hcflask judged it (the robot and its replay count only jobs judged by then)
    judged_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    test = relationship("Test", back_populates="jobs")
    queue = relationship("Queue")
    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", order_by="JobEvent.id", cascade="all, delete-orphan"
    )
    metrics: Mapped[list[JobMetric]] = relationship(
        back_populates="job", order_by="JobMetric.name", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}

    def transition(self, new: JobState, native_state: str | None = None, note: str = "") -> bool:
        """Move to ``new`` and record the step; False if the state is unchanged.

        A final state is never left (jobs move only forward, as Slurm's do): a
        caller that decided on a state that is gone gets :class:`FinalState`.
        """
        if native_state is not None:
            self.native_state = native_state
        if new.value == self.state:
            return False
        if JobState(self.state).final:
            raise FinalState(f"job {self.id} is already {self.state}: not moved to {new.value}")
        if new in (JobState.FAILED, JobState.LOST, JobState.CANCELLED) and self.failure_reason:
            # every way a job fails goes through here, so every failed job has its signature; set
            # before the state, as loading the queue may flush and the flush counts the final state
            self.failure_signature = signature(self.failure_reason, self.queue.name if self.queue else None)
        self.add_row(JobEvent, old_state=self.state, new_state=new.value, native_state=self.native_state,
                     note=note)
        self.state = new.value
        return True

    def add_row(self, model: type[JobEvent] | type[JobMetric], **values: Any) -> None:
        """Add a history or metric row of this job without loading its collection of them.

        ``self.events.append`` would first SELECT every earlier event of the job, and the
        ORM inserts such rows one by one (it needs each one's id back): a query and an
        insert per job and tick.  A saved job's rows wait in its session instead
        (:data:`PENDING_ROWS`) and :mod:`hcflask.engine.jobs.jobwrite` inserts them at the next
        flush, in one statement per kind, in the same transaction as the job.
        """
        session = object_session(self)
        if session is None or self.id is None:  # a new job: its rows are inserted with it
            (self.events if model is JobEvent else self.metrics).append(model(**values))  # type: ignore[arg-type]
            return
        session.info.setdefault(PENDING_ROWS, []).append((model, {"job_id": self.id, **values}))

    @property
    def in_flight(self) -> bool:
        return not JobState(self.state).final

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "test": self.test_id, "queue": self.queue.name,
            "state": self.state, "backend": self.backend, "backend_id": self.backend_id,
            "native_state": self.native_state, "native_reason": self.native_reason,
            "failure_reason": self.failure_reason, "failure_signature": self.failure_signature,
            "exit_code": self.exit_code, "host": self.host,
            "created_at": iso(self.created_at), "submitted_at": iso(self.submitted_at),
            "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
            "cpu_seconds": self.cpu_seconds, "metrics": {m.name: m.value for m in self.metrics},
            "inputs": self.inputs,
        }


@event.listens_for(Job, "before_insert")
def _copy_template(_mapper: Any, connection: Any, job: Job) -> None:
    """Every job carries its test's template (:attr:`Job.template_id`), however it was made."""
    if job.template_id is None:
        test = job.__dict__.get("test")  # loaded already when the job was made from its test
        job.template_id = test.template_id if test is not None else connection.scalar(
            text("SELECT template_id FROM test WHERE id = :id"), {"id": job.test_id})


class JobEvent(Model):
    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    old_state: Mapped[str] = mapped_column(String(16))
    new_state: Mapped[str] = mapped_column(String(16))
    native_state: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")

    job: Mapped[Job] = relationship(back_populates="events")

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": iso(self.time), "old_state": self.old_state, "new_state": self.new_state,
            "native_state": self.native_state, "note": self.note,
        }


class JobMetric(Model):
    """One named value read from a job's output (or reported by its backend)."""

    __tablename__ = "job_metric"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[float]
    unit: Mapped[str] = mapped_column(String(32), default="")
    #: performance flag set by the regression bands: "under", "over" or None
    flag: Mapped[str | None] = mapped_column(String(8))

    job: Mapped[Job] = relationship(back_populates="metrics")

"""The one small interface every batch system adapter implements.

Backends *return values*; only the engine writes the database.  A backend
maps its native states onto :class:`~hcflask.states.JobState` and always
reports the native word too, so the UI can show what the batch system said.

Two exceptions carry the difference that matters most to a site admin:

* :class:`BackendUnavailable` -- the batch system could not be reached (or
  did not answer in time).  That is an *outage of the backend*: jobs keep
  their state and the robot does not judge its queues.
* :class:`SubmitError` -- the batch system answered and refused this one
  job (bad partition, invalid option ...).  That job fails with the message;
  other jobs and queues go on.
"""
from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from hcflask.states import JobState


class BackendError(Exception):
    """Base class of the errors a backend raises on purpose."""


class BackendUnavailable(BackendError):
    """The batch system cannot be reached; an outage, never a job failure."""


class SubmitError(BackendError):
    """The batch system refused this job; the message becomes its failure reason."""


class OptionError(BackendError):
    """A queue's backend options are invalid.

    ``field`` names the option so the UI, API and CLI can point at it.
    ``conflict``: well formed, but the host or batch system says no (a
    partition it does not know, a file that does not exist): HTTP 409.
    """

    def __init__(self, field: str, reason: str, conflict: bool = False) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.conflict = conflict


@dataclasses.dataclass(frozen=True)
class Resources:
    cores: int = 1
    memory_mb: int = 0  # 0: the batch system's default
    walltime: int = 600  # seconds
    gpus: int = 0


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one job.

    The engine has already written the self-contained job wrapper to
    ``script`` (inside ``workdir``); the wrapper writes ``stdout``,
    ``stderr`` and the result file into ``workdir`` itself.
    """

    job_id: int
    name: str  # hc-<instance>-<job id>; unique, used to find the job after a crash
    queue: str
    queue_options: Mapping[str, Any]
    workdir: Path
    script: Path
    resources: Resources
    #: the workload as a bash script and the HC_* variables, for backends
    #: that must render the wrapper themselves (e.g. to run in a pilot's cwd)
    payload: str = ""
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: the stage-in bash of the job's input files ('' without inputs; hcflask.data.stagein), for those too
    stagein: str = ""
    #: the stage-out bash run after the payload ('' without outputs; hcflask.data.stageout)
    stageout: str = ""
    #: the Rucio dataset the inputs come from ('' for none or plain files): PanDA's prodDBlock
    input_dataset: str = ""
    #: the files the replica plan handed the job (``Job.inputs``): PanDA's input files
    inputs: Sequence[Mapping[str, Any]] = ()


@dataclasses.dataclass(frozen=True)
class JobRef:
    """A job the backend already knows (or may know, after a crash)."""

    backend_id: str
    name: str
    queue: str
    queue_options: Mapping[str, Any]
    workdir: Path
    #: hcflask asked the batch system to cancel it (so a cancelled job is "cancelled by hcflask")
    cancel_requested: bool = False


@dataclasses.dataclass
class Status:
    """What the backend says about one job.

    ``state`` is the backend's verdict.  For a finished job the engine has
    the last word: it reads the wrapper's result file and applies the
    workload's success rules, so a backend ``SUCCEEDED`` may still become a
    failed job.  ``LOST`` means the batch system does not know the job.
    """

    state: JobState
    native_state: str = ""
    reason: str = ""  # pending reason while queued, failure reason when final
    exit_code: int | None = None
    host: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    #: CPU seconds the batch system accounted (Slurm's TotalCPU); None where it keeps none
    cpu_seconds: float | None = None
    #: the wrapper's result file, where the backend read it to decide (the engine does not read it again)
    result: dict[str, Any] | None = None


#: options every backend's queues accept (the engine reads them, not the batch system)
COMMON_OPTIONS: Mapping[str, str] = {
    "rse": "Rucio RSE expression whose replicas this queue's jobs read (template inputs; docs/data.md)",
}
#: longest RSE expression accepted
RSE_MAX = 500


def check_common_options(options: dict[str, Any]) -> None:
    """``rse``: a non-empty expression without blanks at its ends (stored stripped)."""
    if "rse" in options:
        value = options["rse"]
        if not isinstance(value, str) or not value.strip(" \t\r\n"):
            raise OptionError("rse", f"must be a Rucio RSE expression (text), got {value!r}")
        if len(value) > RSE_MAX:
            raise OptionError("rse", f"at most {RSE_MAX} characters, got {len(value)}")
        options["rse"] = value.strip(" \t\r\n")


class Backend(abc.ABC):
    """Adapter to one batch or workload system.

    One instance per backend name and application; ``config`` is the
    backend's section of the configuration (``[backends.<name>]``).
    """

    name: ClassVar[str]
    #: options a queue of this backend accepts, with a one-line description
    options: ClassVar[Mapping[str, str]] = {}
    #: False: the job wrapper enforces the walltime itself (TERM, then KILL)
    enforces_walltime: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = config or {}
        #: called (from any thread) when the backend learns by itself that a job changed, so
        #: that the monitor tick can come before its interval; the service sets it
        self.on_change: Callable[[], None] = _nothing

    @classmethod
    def option_schema(cls, limits: Mapping[str, int]) -> dict[str, Any]:
        """The JSON schema of the options (the OpenAPI document's); default: all text, none required."""
        properties: dict[str, dict[str, Any]] = {key: {"type": "string", "description": text}
                                                 for key, text in cls.options.items()}
        properties["rse"] = {"type": "string", "description": COMMON_OPTIONS["rse"], "maxLength": RSE_MAX,
                             "pattern": "[^ \\t\\r\\n]"}
        return {"type": "object", "additionalProperties": False, "properties": properties}

    @classmethod
    def validate_options(cls, options: Mapping[str, Any],
                         config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the cleaned options of a queue, or raise :class:`OptionError`.

        Called when a queue is created or edited, so a mistake is reported
        then and not at the first submission.  ``config`` is the backend's
        configuration section (where its commands live, for instance).
        """
        unknown = sorted(set(options) - set(cls.options) - set(COMMON_OPTIONS))
        if unknown:
            known = ", ".join(sorted({*cls.options, *COMMON_OPTIONS}))
            raise OptionError(unknown[0], f"unknown option for backend {cls.name!r} (known: {known})")
        cleaned = dict(options)
        check_common_options(cleaned)
        return cleaned

    @abc.abstractmethod
    def submit(self, spec: JobSpec) -> str:
        """Hand one job to the batch system and return its backend id."""

    def submit_many(self, specs: Sequence[JobSpec]) -> list[str | BackendError]:
        """Submit several jobs; one backend id or error per spec, in order.

        The default submits one by one; a backend whose batch system takes
        many jobs in one call overrides it.  Once the system is unreachable
        the remaining specs get the same :class:`BackendUnavailable`.
        """
        results: list[str | BackendError] = []
        for spec in specs:
            try:
                results.append(self.submit(spec))
            except SubmitError as exc:
                results.append(exc)
            except BackendUnavailable as exc:
                results.extend([exc] * (len(specs) - len(results)))
                break
        return results

    @abc.abstractmethod
    def poll_many(self, jobs: Sequence[JobRef]) -> dict[str, Status]:
        """Status of many jobs with as few batch-system calls as possible.

        Keyed by ``backend_id``; a job the batch system does not know is
        reported ``LOST`` (or judged from its result file when there is one).
        """

    @abc.abstractmethod
    def cancel_many(self, jobs: Sequence[JobRef]) -> None:
        """Cancel many jobs, in one call where the batch system allows it."""

    @abc.abstractmethod
    def find_by_name(self, jobs: Sequence[JobRef]) -> dict[str, str]:
        """Map job names to backend ids for the jobs the batch system knows.

        Used after a crash to adopt jobs whose submission was never
        recorded; ``backend_id`` of the refs passed in is empty.
        """

    def proves_absent(self, age: timedelta) -> bool:
        """True when a job :meth:`find_by_name` did not find, last claimed for submission
        ``age`` ago, cannot have run: then it is submitted after a crash instead of ``lost``.
        By default nothing is proved (a job may have run and left no trace)."""
        return False

    def discover_queues(self) -> list[dict[str, Any]]:
        """Queues the batch system offers, as ``{"name": ..., "options": ...}``."""
        return []


def _nothing() -> None:
    """No one listens for the backend's own news (tests, commands)."""

"""The ``local`` backend: test jobs as subprocesses of this node.

The embedded default, so a newcomer sees jobs flow with nothing installed.
Each job runs the wrapper in its own session (process group), so cancel
kills the whole tree and the jobs outlive a crash of the service.  The
backend keeps no state it cannot rebuild: the job's work dir holds a
``local.json`` marker (queued/cancelled) and a ``pid`` file (pid and
process start time, so a reused pid is not mistaken for the job); after a
restart the next ``poll_many`` sees the same picture.

At most ``slots`` jobs run per queue (queue option, else ``[backends.local]
slots``, else the number of cores); the others wait, FIFO by job name.  A job
starts when it is submitted if its queue has a free slot, else the moment a
running one ends (:mod:`hcflask.backends.local_slots`), so a poll reads the
work dirs of the jobs that changed only, not of every job in flight.

Native states: ``queued`` (waiting for a slot), ``running``, ``exited``
(result file written), ``killed`` (process gone without a result),
``cancelled``, ``unknown`` (no trace of the job).
"""
from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from hcflask.backends import register
from hcflask.backends.base import Backend, JobRef, JobSpec, OptionError, Status, SubmitError
from hcflask.backends.jobscript import RESULT, WRAPPER, read_json, read_result, read_started, write_json
from hcflask.backends.jobscript import to_datetime as _epoch
from hcflask.backends.local_slots import Slots, signal_sessions
from hcflask.states import JobState

MARKER = "local.json"
PIDFILE = "pid"
#: made (exclusively) just before the wrapper starts: whoever makes it starts the job
LAUNCHED = "launched"
BASH = "/bin/bash"


def _proc_start(pid: int) -> str | None:
    """The process start time from /proc (field 22), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _written(path: Path) -> bool:
    """The file exists and is not empty (the wrapper writes its result in one write, after
    creating the file: empty means not written yet)."""
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


@register("local")
class LocalBackend(Backend):
    options = {"slots": "jobs run at once on this queue (default: [backends.local] slots or the core count)"}
    enforces_walltime = False
    #: jobs claimed and submitted per round (a submission only writes a marker file: one
    #: claim commit and one result commit per round, not two per job)
    submit_batch = 1000

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._view = Slots(self._start, lambda: self.on_change())

    @classmethod
    def validate_options(cls, options: Mapping[str, Any],
                         config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from hcflask.models import messages
        from hcflask.models.spec import as_whole, current_limits

        cleaned = super().validate_options(options, config)
        if "slots" in cleaned:
            slots, high = as_whole(cleaned["slots"]), current_limits()["slots"]
            if slots is None:
                raise OptionError("slots", messages.whole_number(cleaned["slots"]))
            cleaned["slots"] = slots
            if slots < 1:
                raise OptionError("slots", messages.at_least(1, slots))
            if slots > high:
                raise OptionError("slots", messages.at_most(high, "slots", slots))
        return cleaned

    @classmethod
    def option_schema(cls, limits: Mapping[str, int]) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False,
                "properties": {**super().option_schema(limits)["properties"],
                               "slots": {"type": "integer", "minimum": 1, "maximum": limits["slots"]}}}

    def _slots(self, options: Mapping[str, Any]) -> int:
        return int(options.get("slots") or self.config.get("slots") or os.cpu_count() or 1)

    # -- the contract ---------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        if not spec.script.is_file():
            raise SubmitError(f"job wrapper {spec.script} does not exist")
        self._write_marker(spec.workdir, {"state": "queued", "queue": spec.queue})
        with self._view.lock:
            self._view.wait(JobRef(spec.name, spec.name, spec.queue, spec.queue_options, spec.workdir),
                            self._slots(spec.queue_options))
            self._view.start_waiting()
        return spec.name

    def poll_many(self, jobs: Sequence[JobRef]) -> dict[str, Status]:
        with self._view.lock:
            self._reap()
            statuses = {ref.backend_id: self._known(ref) for ref in jobs}
            for name in self._view.start_waiting():
                statuses[name] = Status(JobState.RUNNING, "running")
        return statuses

    def cancel_many(self, jobs: Sequence[JobRef]) -> None:
        live = []
        with self._view.lock:
            for ref in jobs:
                self._view.forget(ref)
                marker = self._read_marker(ref.workdir)
                if marker is None:
                    continue
                self._write_marker(ref.workdir, {**marker, "state": "cancelled"})
                pid = self._live_pid(ref.workdir)
                if pid is not None:
                    live.append(pid)
        signal_sessions(live, signal.SIGTERM)

    def find_by_name(self, jobs: Sequence[JobRef]) -> dict[str, str]:
        return {ref.name: ref.name for ref in jobs if self._read_marker(ref.workdir) is not None}

    def proves_absent(self, age: timedelta) -> bool:
        """The marker is written before the job starts: no marker, never started."""
        return True

    # -- helpers ----------------------------------------------------------------
    def _known(self, ref: JobRef) -> Status:
        """A job's state from the view where it has one, else from its work dir (bringing it into
        the view: a job started before a restart, one whose wrapper just ended, or any running one
        where there are no pidfds)."""
        slots = self._slots(ref.queue_options)
        self._view.queue(ref.queue, slots)
        if self._view.waiting(ref):
            return Status(JobState.QUEUED, "queued", "waiting for a free slot")
        run = self._view.running(ref)
        if run is not None and run.pid == 0:  # its slot is taken, its process not started yet
            return Status(JobState.QUEUED, "queued", "starting")
        # watched: running until the thread hears it end, unless its result is written (the wrapper
        # is exiting: one look, so that a poll right after a job's end judges it)
        if run is not None and run.pidfd is not None and not _written(ref.workdir / RESULT):
            if run.started is None:
                run.started = read_started(ref.workdir)
            started = run.started or {}
            return Status(JobState.RUNNING, "running", host=started.get("host"),
                          started_at=_epoch(started.get("start")))
        status = self._status(ref)
        if status.state is JobState.QUEUED:
            self._view.wait(ref, slots)
        elif status.state is JobState.RUNNING and (pid := self._live_pid(ref.workdir)) is not None:
            self._view.adopt(ref, pid, slots)
        else:
            self._view.forget(ref)
        return status

    def _status(self, ref: JobRef) -> Status:
        """The job's state from one listing of its work dir, reading only the files that decide it."""
        try:
            names = set(os.listdir(ref.workdir))
        except OSError:
            names = set()
        marker = self._read_marker(ref.workdir) if MARKER in names else None
        if marker is None:
            return Status(JobState.LOST, "unknown", "the job's work dir has no trace of a submission")
        cancelled = marker.get("state") == "cancelled"
        result = read_result(ref.workdir, names) if RESULT in names else None
        # the wrapper matters where the job was cancelled, or its result is not there (or still
        # being written: empty)
        live = self._live_pid(ref.workdir) if PIDFILE in names and (cancelled or result is None) else None
        if cancelled and live is None:
            return Status(JobState.CANCELLED, "cancelled", "cancelled")
        if result is None and PIDFILE in names and live is None:
            result = read_result(ref.workdir)  # it ended after the listing, writing its result first
        if result is not None:
            code = int(result.get("exit_code", -1))
            return Status(
                JobState.SUCCEEDED if code == 0 else JobState.FAILED, "exited", exit_code=code,
                host=result.get("host"), started_at=_epoch(result.get("start")),
                ended_at=_epoch(result.get("end")), result=result,
            )
        if live is not None:
            started = read_started(ref.workdir) or {}
            return Status(JobState.RUNNING, "running", host=started.get("host"),
                          started_at=_epoch(started.get("start")))
        if PIDFILE in names:
            return Status(JobState.FAILED, "killed", "the job's process ended without writing a result")
        return Status(JobState.QUEUED, "queued", "waiting for a free slot")

    def _start(self, ref: JobRef) -> int | None:
        """Start the wrapper in its own session, stdin from /dev/null, its output in wrapper.log,
        no descriptor of the service inherited.  The wrapper changes into its work dir itself.
        None for a job cancelled meanwhile (by another process: its marker says so) or started by
        another view (``launched``).

        ``subprocess`` rather than ``os.posix_spawn``: both start it with vfork, but
        ``os.posix_spawn`` holds the interpreter's lock until the child has exec'd, so every
        tick stalled on every start (a quarter of the service's time at 100 jobs a second);
        subprocess lets go of it meanwhile (measured on Python 3.11.7: another thread ran 7
        times as often)."""
        marker = self._read_marker(ref.workdir)
        if marker is None or marker.get("state") != "queued":
            return None
        try:  # the start is claimed once across processes (a service that lost its role, a restart)
            os.close(os.open(ref.workdir / LAUNCHED, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return None
        log = os.open(ref.workdir / "wrapper.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                [BASH, str(ref.workdir / WRAPPER)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)
        finally:
            os.close(log)
        self._procs[proc.pid] = proc
        (ref.workdir / PIDFILE).write_text(f"{proc.pid} {_proc_start(proc.pid) or ''}\n")
        return proc.pid

    def _live_pid(self, workdir: Path) -> int | None:
        try:
            pid_text, _, start = (workdir / PIDFILE).read_text().strip().partition(" ")
            pid = int(pid_text)
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            return None
        if (start and fields[19] != start) or fields[0] == "Z":
            return None
        return pid

    def _reap(self) -> None:
        """Collect the jobs this service started that ended (only those: other children are not ours)."""
        for pid, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[pid]

    @staticmethod
    def _read_marker(workdir: Path) -> dict[str, Any] | None:
        return read_json(workdir / MARKER)

    @staticmethod
    def _write_marker(workdir: Path, data: Mapping[str, Any]) -> None:
        write_json(workdir / MARKER, data)

"""The Slurm backend: ``sbatch``/``squeue``/``sacct``/``scancel``/``sinfo``.

It behaves like a careful human at a login node: one ``squeue`` for every
job in flight per monitor pass, one ``sacct`` (or ``sacct -c`` /
``scontrol show job`` where accounting is disabled) for the jobs that left
the queue, one ``scancel`` for many jobs, argument lists only, and every
command through :func:`hcflask.backends.runner.run` (timeouts, ``SBATCH_*``
removed).  State mapping and parsers: :mod:`hcflask.backends.slurm_parse`.

"Slurm does not answer" raises :class:`BackendUnavailable` (an outage);
"Slurm answered no" raises :class:`SubmitError` (that job fails).  A submit
that timed out may still have reached the controller, so before retrying it
the job is looked up by its unique name: never two Slurm jobs for one row.

The final word on a finished job is the wrapper's result file in the work
dir; so the work dirs (``[paths] jobs``) must be on a filesystem the compute
nodes see.  A job Slurm calls COMPLETED without a result file is reported
as such; the engine waits ``[jobs] result_grace_seconds`` (kept in the job
row, so a restart does not reset it) and then fails it with a reason saying
exactly that.

Nothing that matters lives only in this object: "cancelled by hcflask"
comes from the job row (``JobRef.cancel_requested``), and the accounting
source (``auto``) is found again from the cluster after a restart.

Config (``[backends.slurm]``): ``slurm_conf`` (default: ``$SLURM_CONF``),
``bin_dir`` and per-command paths (``sbatch = "/opt/slurm/bin/sbatch"``),
``command_timeout`` (30 s), ``submit_retries`` (2), ``retry_delay`` (1 s,
doubled each retry), ``cancel_running`` (false: only pending jobs are
cancelled), ``accounting`` (``auto``, ``slurmdbd``, ``jobcomp``, ``none``), ``gpu_flag`` (``gpus`` or ``gres``),
``name_lookback_days`` (7, for ``sacct --name`` after a crash), ``min_job_age`` (300: the cluster's
MinJobAge, how long a job that was never seen in ``squeue -t all`` proves it never reached Slurm).
"""
from __future__ import annotations

import collections
import pwd
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from hcflask.backends import jobscript, register, runner
from hcflask.backends import slurm_parse as sp
from hcflask.backends.base import (
    Backend,
    BackendUnavailable,
    JobRef,
    JobSpec,
    OptionError,
    Status,
    SubmitError,
)
from hcflask.states import JobState

COMMANDS = ("sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo")
#: how many ids or names go into one command line
CHUNK = 500


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


def _commands(config: Mapping[str, Any]) -> dict[str, str]:
    bin_dir = config.get("bin_dir")
    return {c: str(config.get(c) or (Path(bin_dir) / c if bin_dir else c)) for c in COMMANDS}


def _env(config: Mapping[str, Any]) -> dict[str, str]:
    """Extra environment of every command; the service's own ``SLURM_CONF`` is
    passed on by the runner unless ``slurm_conf`` names another file."""
    env = {"SLURM_TIME_FORMAT": "standard"}
    if config.get("slurm_conf"):
        env["SLURM_CONF"] = str(config["slurm_conf"])
    return env


@register("slurm")
class SlurmBackend(Backend):
    """Jobs as Slurm batch jobs on a site's partitions."""

    options = {
        "partition": "Slurm partition (required)",
        "account": "sbatch --account",
        "qos": "sbatch --qos",
        "reservation": "sbatch --reservation",
        "constraint": "sbatch --constraint (node features)",
        "extra_args": "further sbatch arguments, a list of strings",
    }

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.commands = _commands(cfg)
        self.env = _env(cfg)
        self.timeout = float(cfg.get("command_timeout", 30))
        self.retries = int(cfg.get("submit_retries", 2))
        self.retry_delay = float(cfg.get("retry_delay", 1.0))
        self.cancel_running = bool(cfg.get("cancel_running", False))
        self.accounting = str(cfg.get("accounting", "auto"))
        self.gpu_flag = str(cfg.get("gpu_flag", "gpus"))
        self.lookback_days = int(cfg.get("name_lookback_days", 7))
        #: the cluster's MinJobAge: squeue -t all shows a finished job at least this long
        self.min_job_age = float(cfg.get("min_job_age", 300))
        #: Slurm commands issued, by name (the benchmark reads it)
        self.calls: collections.Counter[str] = collections.Counter()

    # -- plumbing ----------------------------------------------------------

    def _run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        self.calls[command] += 1
        return runner.run([self.commands[command], *args], timeout=self.timeout, env=self.env)

    def _checked(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run; a non-zero exit that means "no controller" raises BackendUnavailable."""
        proc = self._run(command, *args)
        if proc.returncode != 0 and sp.is_transient(proc.stderr):
            raise BackendUnavailable(f"{command}: {sp.error_text(proc.stderr)}")
        return proc

    # -- queues --------------------------------------------------------------

    @classmethod
    def validate_options(cls, options: Mapping[str, Any],
                         config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check the options locally, then with ``sbatch --test-only`` (no job is created).

        ``--test-only`` has sbatch parse every option (an unknown one fails
        at once, without the controller) and the controller check the
        partition, account, qos, reservation and constraint.  When the
        controller cannot be reached the local checks stand alone: an
        outage must not block creating a queue.
        """
        cleaned = sp.clean_options(super().validate_options(options, config))
        cfg = config or {}
        argv = [_commands(cfg)["sbatch"], "--test-only", *cls._queue_args(cleaned), "--wrap=true"]
        try:
            proc = runner.run(argv, timeout=float(cfg.get("command_timeout", 30)), env=_env(cfg))
        except BackendUnavailable:
            return cleaned
        if proc.returncode != 0 and not sp.is_transient(proc.stderr):
            message = sp.error_text(proc.stderr)
            field = sp.option_field(message, cleaned)
            reason = f"sbatch refused it: {message}" if field != "backend" else f"sbatch --test-only failed: {message}"
            raise OptionError(field, reason, conflict=True)
        return cleaned

    @classmethod
    def option_schema(cls, limits: Mapping[str, int]) -> dict[str, Any]:
        schema = super().option_schema(limits)
        for key in ("partition", *sp.STRING_OPTIONS):
            schema["properties"][key]["pattern"] = f"^{sp.SLURM_NAME_RE.pattern}$"
        schema["properties"]["extra_args"] = {
            "type": "array", "items": {"type": "string"},
            "description": "sbatch options, read as sbatch's getopt_long reads them; unknown or reserved "
                           "options are refused (a grammar a JSON schema cannot state)"}
        return {**schema, "required": ["partition"]}

    @staticmethod
    def _queue_args(options: Mapping[str, Any]) -> list[str]:
        args = [f"--partition={options['partition']}"]
        args += [f"--{key}={options[key]}" for key in sp.STRING_OPTIONS if options.get(key)]
        return args + list(options.get("extra_args") or [])

    def discover_queues(self) -> list[dict[str, Any]]:
        """Partitions from one ``sinfo`` call, with their time limits (seconds)."""
        proc = self._checked("sinfo", "-h", "-o", sp.SINFO_FORMAT)
        if proc.returncode != 0:
            raise BackendUnavailable(f"sinfo: {sp.error_text(proc.stderr)}")
        return sp.parse_sinfo(proc.stdout)

    # -- submit ----------------------------------------------------------

    def sbatch_args(self, spec: JobSpec) -> list[str]:
        res = spec.resources
        work = spec.workdir
        args = ["--parsable", f"--job-name={spec.name}", *self._queue_args(spec.queue_options)[:1],
                "--nodes=1", "--ntasks=1", f"--cpus-per-task={max(1, res.cores)}",
                f"--time={sp.time_arg(res.walltime)}", f"--chdir={work}",
                f"--output={work / 'slurm-%j.out'}", f"--error={work / 'slurm-%j.err'}", "--no-requeue"]
        if res.memory_mb:
            args.append(f"--mem={res.memory_mb}M")
        if res.gpus:
            args.append(f"--gres=gpu:{res.gpus}" if self.gpu_flag == "gres" else f"--gpus={res.gpus}")
        args += self._queue_args(spec.queue_options)[1:]
        return [*args, str(spec.script)]

    def submit(self, spec: JobSpec) -> str:
        """``sbatch --parsable``; transient errors retried with back-off.

        Before each retry the name is looked up, because a submission whose
        answer was lost (socket timed out) may have created the job.
        """
        argv = self.sbatch_args(spec)
        delay = self.retry_delay
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
                try:
                    found = self.find_by_name([JobRef("", spec.name, spec.queue, spec.queue_options,
                                                      spec.workdir)])
                except BackendUnavailable as exc:
                    last = str(exc)
                    continue
                if spec.name in found:
                    return found[spec.name]
            try:
                proc = self._run("sbatch", *argv)
            except BackendUnavailable as exc:
                last = str(exc)
                continue
            if proc.returncode == 0:
                try:
                    return sp.parse_parsable(proc.stdout)
                except ValueError as exc:
                    raise SubmitError(str(exc)) from exc
            message = sp.error_text(proc.stderr)
            if not sp.is_transient(message):
                raise SubmitError(message)
            last = f"sbatch: {message}"
        raise BackendUnavailable(last or "sbatch: no answer")

    # -- monitor -----------------------------------------------------------

    def _squeue(self, ids: Sequence[str]) -> dict[str, sp.SlurmJob]:
        jobs: dict[str, sp.SlurmJob] = {}
        for chunk in _chunks(ids):
            proc = self._checked("squeue", "-h", "-t", "all", "-j", ",".join(chunk), "-o", sp.SQUEUE_FORMAT)
            if proc.returncode != 0:
                if "invalid job id" in proc.stderr.lower():
                    continue  # none of them is known any more
                raise BackendUnavailable(f"squeue: {sp.error_text(proc.stderr)}")
            jobs.update(sp.parse_squeue(proc.stdout))
        return jobs

    def _finished(self, ids: Sequence[str]) -> dict[str, sp.SlurmJob] | None:
        """Final records of jobs that left the queue; None when no source answered.

        ``auto`` tries ``sacct`` (slurmdbd), then ``sacct -c`` (the
        jobcomp/filetxt log), then ``scontrol show job``, and remembers
        the first that works.
        """
        modes = [self.accounting] if self.accounting != "auto" else ["slurmdbd", "jobcomp", "none"]
        for mode in modes:
            try:
                jobs = self._finished_from(mode, ids)
            except BackendUnavailable:
                return None
            if jobs is not None:
                self.accounting = mode
                return jobs
        return None

    def _finished_from(self, mode: str, ids: Sequence[str]) -> dict[str, sp.SlurmJob] | None:
        if mode == "none":  # every job slurmctld still remembers, in one call
            proc = self._checked("scontrol", "-o", "show", "job")
            if proc.returncode != 0:
                return None
            parsed = sp.parse_scontrol(proc.stdout)
            return {i: parsed[i] for i in ids if i in parsed}
        jobs: dict[str, sp.SlurmJob] = {}
        for chunk in _chunks(ids):
            # jobcomp has no CPU time; with slurmdbd the job's own line (no -X) sums its steps' TotalCPU
            extra, fields = (["-c"], sp.SACCT_FIELDS) if mode == "jobcomp" else ([], sp.SACCT_CPU_FIELDS)
            proc = self._checked("sacct", *extra, "-n", "-P", "-j", ",".join(chunk), "-o", fields)
            if proc.returncode != 0:
                return None
            jobs.update(sp.parse_sacct(proc.stdout))
        return jobs

    def poll_many(self, jobs: Sequence[JobRef]) -> dict[str, Status]:
        """One ``squeue`` for all, one ``sacct`` for those that left the queue.

        A job neither command knows is judged from its result file, else
        reported LOST.  When the final-state source does not answer, the
        jobs that left the queue are left out of the answer (no news).
        """
        refs = [ref for ref in jobs if ref.backend_id]
        if not refs:
            return {}
        queue = self._squeue([ref.backend_id for ref in refs])
        out: dict[str, Status] = {}
        left = []
        for ref in refs:
            job = queue.get(ref.backend_id)
            if job is not None and not job.final:
                out[ref.backend_id] = self._live_status(job)
            else:
                left.append(ref)
        if not left:
            return out
        finished = self._finished([ref.backend_id for ref in left])
        for ref in left:
            record = (finished or {}).get(ref.backend_id) or queue.get(ref.backend_id)
            if record is not None and not record.final:
                out[ref.backend_id] = self._live_status(record)
            elif record is not None:
                out[ref.backend_id] = self._final_status(ref, record)
            else:
                status = self._unknown_status(ref, answered=finished is not None)
                if status is not None:
                    out[ref.backend_id] = status
        return out

    @staticmethod
    def _live_status(job: sp.SlurmJob) -> Status:
        state = sp.native_to_state(job.state)
        running = state is JobState.RUNNING
        return Status(state=state, native_state=job.state, reason="" if running else job.reason,
                      host=(job.nodes or None) if running else None,
                      started_at=job.start if running else None)

    def _final_status(self, ref: JobRef, job: sp.SlurmJob) -> Status:
        result = jobscript.read_result(ref.workdir)
        status = Status(state=sp.native_to_state(job.state), native_state=job.state,
                        exit_code=job.exit_code, host=job.nodes or None, started_at=job.start,
                        ended_at=job.end, cpu_seconds=job.total_cpu)
        if result is not None:
            status.exit_code = int(result.get("exit_code", -1))
            status.host = str(result.get("host") or status.host or "") or None
        if job.state in sp.SUCCEEDED_STATES:
            if result is None:
                return status  # the engine waits result_grace_seconds for the file, then fails the job
            if status.exit_code == 0:
                return status
            status.state = JobState.FAILED
        if result is not None and result.get("timeout") and job.state in ("COMPLETED", "FAILED"):
            took = int(result.get("end", 0)) - int(result.get("start", 0))
            status.reason = f"timeout after {sp.format_duration(took)}"
            return status
        oom = self._oom_line(ref) if job.state in ("FAILED", "CANCELLED", "OUT_OF_MEMORY") else ""
        if oom:  # jobacct_gather's OverMemoryKill: Slurm says FAILED, its error file says why
            status.state = JobState.FAILED
            status.reason = f"out of memory: {oom}"
            return status
        status.reason = sp.failure_reason(job, exit_code=status.exit_code, stderr_line=self._stderr_line(ref),
                                          by_us=ref.cancel_requested,
                                          user=_user(job.cancelled_by))
        return status

    def _unknown_status(self, ref: JobRef, *, answered: bool) -> Status | None:
        result = jobscript.read_result(ref.workdir)
        if result is not None:
            code = int(result.get("exit_code", -1))
            state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
            reason = "" if code == 0 else f"exit {code}: {self._stderr_line(ref)}".rstrip(": ")
            return Status(state=state, native_state="", reason=reason, exit_code=code,
                          host=result.get("host"))
        if not answered:
            return None
        return Status(state=JobState.LOST, native_state="",
                      reason=f"Slurm does not know job {ref.backend_id} (not in squeue nor {self._source()})")

    def _source(self) -> str:
        return {"slurmdbd": "sacct", "jobcomp": "sacct -c", "none": "scontrol"}.get(self.accounting, "sacct")

    @staticmethod
    def _stderr_line(ref: JobRef) -> str:
        """Last non-empty line of the payload's stderr, else of Slurm's own error file."""
        candidates = [ref.workdir / jobscript.STDERR]
        if ref.backend_id:
            candidates.append(ref.workdir / f"slurm-{ref.backend_id}.err")
        for path in candidates:
            lines = [line.strip() for line in jobscript.tail(path, 4096).splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return ""

    @staticmethod
    def _oom_line(ref: JobRef) -> str:
        """Slurm's own "exceeded memory limit" line from its error file, if any."""
        text = jobscript.tail(ref.workdir / f"slurm-{ref.backend_id}.err", 8192)
        for line in text.splitlines():
            if any(marker in line.lower() for marker in sp.OOM_MARKERS):
                return line.split("error: ", 1)[-1].strip()[:300]
        return ""

    # -- cancel and crash recovery -------------------------------------------

    def cancel_many(self, jobs: Sequence[JobRef]) -> None:
        """One ``scancel``; running jobs only with ``cancel_running = true``."""
        ids = [ref.backend_id for ref in jobs if ref.backend_id]
        if not ids:
            return
        state = [] if self.cancel_running else ["--state=PENDING"]
        for chunk in _chunks(ids):
            # finished or unknown ids are no error here
            self._checked("scancel", *state, *chunk)

    def find_by_name(self, jobs: Sequence[JobRef]) -> dict[str, str]:
        """Names to ids from one ``squeue --name`` and, with accounting, one ``sacct --name``."""
        names = [ref.name for ref in jobs]
        if not names:
            return {}
        found: dict[str, str] = {}
        for chunk in _chunks(names):
            proc = self._checked("squeue", "-h", "-t", "all", f"--name={','.join(chunk)}", "-o", "%i|%j")
            if proc.returncode != 0:
                raise BackendUnavailable(f"squeue: {sp.error_text(proc.stderr)}")
            sp.collect_names(found, proc.stdout, set(chunk))
            if self.accounting in ("auto", "slurmdbd", "jobcomp"):
                extra = ["-c"] if self.accounting == "jobcomp" else ["-X"]
                proc = self._checked("sacct", *extra, "-n", "-P", f"--name={','.join(chunk)}",
                                     f"--starttime=now-{self.lookback_days}days",
                                     # a job held for later (--begin) and cancelled counts as in the future
                                     "--endtime=now+365days", "-o", "JobID,JobName")
                if proc.returncode == 0:
                    sp.collect_names(found, proc.stdout, set(chunk))
                elif self.accounting == "auto" and "disabled" in proc.stderr:
                    self.accounting = "jobcomp"
                    proc = self._checked("sacct", "-c", "-n", "-P", f"--name={','.join(chunk)}",
                                         "-o", "JobID,JobName")
                    if proc.returncode == 0:
                        sp.collect_names(found, proc.stdout, set(chunk))
        return found


    def proves_absent(self, age: timedelta) -> bool:
        """Not in ``squeue -t all`` while younger than MinJobAge (a job that existed would still
        be listed), or not in accounting where there is accounting: it never reached Slurm."""
        return age.total_seconds() < self.min_job_age or self.accounting in ("slurmdbd", "jobcomp")


def _user(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

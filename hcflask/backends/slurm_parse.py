"""Reading Slurm's command output, and what its job states mean to hcflask.

Kept apart from :mod:`hcflask.backends.slurm` (which runs the commands) so
the parsers can be tested on recorded output and the mapping is in one
place.  Slurm's words are kept verbatim as ``native_state``.

Native states and what they become (module-level sets below):

=================  ==========  ================================================
Slurm state        hcflask     failure reason
=================  ==========  ================================================
PENDING            queued      (the pending reason, e.g. ``Resources``)
CONFIGURING        queued
REQUEUED           queued      (also REQUEUE_FED, REQUEUE_HOLD, RESV_DEL_HOLD)
RUNNING            running     (also COMPLETING, SUSPENDED, STOPPED,
                               SIGNALING, STAGE_OUT, RESIZING)
COMPLETED          succeeded   only with the wrapper's result file; without it
                               (after a grace period) failed: "no result file"
FAILED             failed      ``exit 3: <last line of stderr>``
TIMEOUT            failed      ``timeout after 00:10:00``
NODE_FAIL          failed      ``node failure on node42``
OUT_OF_MEMORY      failed      ``out of memory`` (also FAILED/CANCELLED whose
                               Slurm error file says "exceeded memory limit")
BOOT_FAIL          failed      ``node boot failure on node42``
DEADLINE           failed      ``deadline reached``
SPECIAL_EXIT       failed      ``special exit (held by the epilog)``
CANCELLED          cancelled   ``cancelled by admin`` (``by hcflask`` if we did)
PREEMPTED          cancelled   ``preempted``: says nothing about the queue
REVOKED            cancelled   ``revoked by the federation``
=================  ==========  ================================================
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hcflask.backends.base import OptionError
from hcflask.states import JobState

QUEUED_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                           "RESV_DEL_HOLD"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT",
                            "RESIZING"})
SUCCEEDED_STATES = frozenset({"COMPLETED"})
FAILED_STATES = frozenset({"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                           "SPECIAL_EXIT"})
CANCELLED_STATES = frozenset({"CANCELLED", "PREEMPTED", "REVOKED"})
FINAL_STATES = SUCCEEDED_STATES | FAILED_STATES | CANCELLED_STATES

#: words in a command's error output that mean "the controller did not answer"
TRANSIENT_MARKERS = (
    "unable to contact slurm controller",
    "socket timed out",
    "slurm temporarily unable to accept job",
    "zero bytes were transmitted",
    "connection refused",
    "connection reset",
    "resource temporarily unavailable",
    "communication connection failure",
    "slurm_persist_conn",
    "controller is busy",
    "not responding",
    "backup controller in standby mode",
    "unable to connect to slurmdbd",
)

#: how the commands say "no node yet"
NO_NODES = frozenset({"", "None assigned", "(null)", "N/A"})
#: lines in Slurm's error file that mean the job was killed for its memory use
OOM_MARKERS = ("exceeded memory limit", "exceeded job memory limit", "oom-kill", "out of memory")

#: ``squeue --format`` the parser below expects (``|`` never occurs in these fields)
SQUEUE_FORMAT = "%i|%j|%T|%r|%N|%S|%e|%l"
#: ``sacct --format`` (with ``-P``: ``|``-separated)
SACCT_FIELDS = "JobID,JobName,State,ExitCode,NodeList,Start,End,Timelimit"
#: with slurmdbd, and without ``-X``: the job's line then carries the CPU time of all its steps
SACCT_CPU_FIELDS = SACCT_FIELDS + ",TotalCPU"
#: ``sinfo --format``: partition (``*`` marks the default), time limit, availability, nodes, CPUs
SINFO_FORMAT = "%P|%l|%a|%D|%c"


@dataclasses.dataclass
class SlurmJob:
    """One job as a Slurm command reported it."""

    job_id: str
    name: str = ""
    state: str = ""  # first word, e.g. CANCELLED of "CANCELLED by 0"
    reason: str = ""
    nodes: str = ""
    start: datetime | None = None
    end: datetime | None = None
    time_limit: int | None = None  # seconds
    exit_code: int | None = None
    signal: int | None = None
    cancelled_by: int | None = None
    total_cpu: float | None = None  # seconds (sacct's TotalCPU, with slurmdbd only)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def is_transient(message: str) -> bool:
    low = message.lower()
    return any(marker in low for marker in TRANSIENT_MARKERS)


def error_text(stderr: str) -> str:
    """Slurm's error output as one line, without the ``sbatch: error:`` prefixes."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", "squeue: error: ", "sacct: error: ", "scancel: error: ",
                       "sbatch: ", "error: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line and not line.startswith("Try \"sbatch --help\""):
            lines.append(line)
    return "; ".join(lines) or "no error message"


def parse_time(text: str) -> datetime | None:
    """Slurm's local ISO time (``2026-11-24T21:59:40``) as an aware UTC datetime."""
    text = text.strip()
    if not text or text in ("Unknown", "N/A", "None") or not text[0].isdigit():
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def parse_duration(text: str, bare_unit: int = 60) -> int | None:
    """``[D-]HH:MM:SS`` / ``MM:SS`` / ``D-HH`` / a bare number (minutes) in seconds."""
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INVALID", "PARTITION_LIMIT", "N/A", "NONE"):
        return None
    days = 0
    if "-" in text:
        head, text = text.split("-", 1)
        days = int(head)
        parts = [int(p) for p in text.split(":")]
        parts += [0] * (3 - len(parts))  # D-HH, D-HH:MM
        hours, minutes, seconds = parts
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            return parts[0] * bare_unit
        if len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        else:
            hours, minutes, seconds = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_cpu(text: str) -> float | None:
    """sacct's ``TotalCPU`` (``[D-][HH:]MM:SS[.mmm]``) in seconds; None if absent or zero."""
    days, _, clock = text.strip().rpartition("-")
    try:
        parts = [float(p) for p in clock.split(":")]
        total = sum(v * 60 ** i for i, v in enumerate(reversed(parts))) + (int(days) * 86400 if days else 0)
    except ValueError:
        return None
    return total or None


def format_duration(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def time_arg(seconds: int) -> str:
    """``--time`` value: whole minutes, rounded up (Slurm's own resolution)."""
    return str(max(1, math.ceil(seconds / 60)))


def _exit(text: str) -> tuple[int | None, int | None]:
    code, _, sig = text.strip().partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, None


def _state(text: str) -> tuple[str, int | None]:
    words = text.split()
    if not words:
        return "", None
    by = None
    if len(words) >= 3 and words[1] == "by" and words[2].isdigit():
        by = int(words[2])
    return words[0].rstrip("+"), by


def parse_parsable(stdout: str) -> str:
    """Job id from ``sbatch --parsable`` (``123`` or ``123;cluster``)."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = line.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise ValueError(f"sbatch printed no job id: {stdout.strip()!r}")
    return job_id


def parse_squeue(stdout: str) -> dict[str, SlurmJob]:
    """Output of ``squeue -h -o SQUEUE_FORMAT``."""
    jobs = {}
    for line in stdout.splitlines():
        f = line.split("|")
        if len(f) < 8 or not f[0].strip():
            continue
        state, _ = _state(f[2])
        jobs[f[0].strip()] = SlurmJob(
            job_id=f[0].strip(), name=f[1], state=state,
            reason="" if f[3] in ("None", "(null)") else f[3], nodes="" if f[4] in NO_NODES else f[4],
            start=parse_time(f[5]), end=parse_time(f[6]), time_limit=parse_duration(f[7]),
        )
    return jobs


def parse_sacct(stdout: str) -> dict[str, SlurmJob]:
    """Output of ``sacct [-c] -n -P -o SACCT_FIELDS``; job steps are skipped."""
    jobs = {}
    for line in stdout.splitlines():
        f = line.split("|")
        if len(f) < 8 or not f[0].strip() or "." in f[0]:
            continue
        state, by = _state(f[2])
        code, sig = _exit(f[3])
        job = SlurmJob(
            job_id=f[0].strip(), name=f[1], state=state, nodes="" if f[4] in NO_NODES else f[4],
            start=parse_time(f[5]), end=parse_time(f[6]), time_limit=parse_duration(f[7]),
            exit_code=code, signal=sig, cancelled_by=by, total_cpu=parse_cpu(f[8]) if len(f) > 8 else None,
        )
        jobs[job.job_id] = job  # a requeued job is listed again: the last record wins
    return jobs


def _scontrol_fields(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for token in line.split(" "):
        name, eq, value = token.partition("=")
        if eq and name and " " not in name and (name[0].isupper() or name[0].isdigit()):
            key = name
            fields[key] = value
        elif key is not None:
            fields[key] += " " + token  # a value with spaces (Command, WorkDir, ...)
    return fields


def parse_scontrol(stdout: str) -> dict[str, SlurmJob]:
    """Output of ``scontrol -o show job`` (one line per job)."""
    jobs = {}
    for line in stdout.splitlines():
        f = _scontrol_fields(line.strip())
        if "JobId" not in f:
            continue
        state, _ = _state(f.get("JobState", ""))
        code, sig = _exit(f.get("ExitCode", ""))
        reason = f.get("Reason", "")
        jobs[f["JobId"]] = SlurmJob(
            job_id=f["JobId"], name=f.get("JobName", ""), state=state,
            reason="" if reason == "None" else reason,
            nodes="" if f.get("NodeList", "") in NO_NODES else f["NodeList"],
            start=parse_time(f.get("StartTime", "")), end=parse_time(f.get("EndTime", "")),
            time_limit=parse_duration(f.get("TimeLimit", "")), exit_code=code, signal=sig,
        )
    return jobs


def parse_sinfo(stdout: str) -> list[dict[str, object]]:
    """Partitions from ``sinfo -h -o SINFO_FORMAT`` (several lines per partition merged)."""
    parts: dict[str, dict[str, object]] = {}
    for line in stdout.splitlines():
        f = line.split("|")
        if len(f) < 5 or not f[0].strip():
            continue
        name = f[0].strip()
        default = name.endswith("*")
        name = name.rstrip("*")
        entry = parts.setdefault(name, {
            "name": name, "options": {"partition": name}, "time_limit": parse_duration(f[1]),
            "available": f[2] == "up", "default": default, "nodes": 0, "cpus_per_node": f[4].strip(),
        })
        count = int(f[3]) if f[3].strip().isdigit() else 0
        entry["nodes"] = int(str(entry["nodes"])) + count
        per_node = f[4].strip().rstrip("+")
        entry["cpus"] = int(str(entry.get("cpus", 0))) + count * (int(per_node) if per_node.isdigit() else 0)
    return list(parts.values())


def native_to_state(state: str) -> JobState:
    """hcflask's word for a Slurm state (unknown words count as queued: never final by accident)."""
    if state in RUNNING_STATES:
        return JobState.RUNNING
    if state in SUCCEEDED_STATES:
        return JobState.SUCCEEDED
    if state in FAILED_STATES:
        return JobState.FAILED
    if state in CANCELLED_STATES:
        return JobState.CANCELLED
    return JobState.QUEUED


def failure_reason(job: SlurmJob, *, exit_code: int | None, stderr_line: str, by_us: bool,
                   user: str | None) -> str:
    """A reason a site admin can act on, for a job Slurm ended other than COMPLETED."""
    nodes = job.nodes or "an unknown node"
    if job.state == "TIMEOUT":
        limit = format_duration(job.time_limit) if job.time_limit else "its time limit"
        return f"timeout after {limit}"
    if job.state == "NODE_FAIL":
        return f"node failure on {nodes}"
    if job.state == "BOOT_FAIL":
        return f"node boot failure on {nodes}"
    if job.state == "OUT_OF_MEMORY":
        return "out of memory"
    if job.state == "DEADLINE":
        return "deadline reached"
    if job.state == "SPECIAL_EXIT":
        return "special exit (held by the epilog)"
    if job.state == "PREEMPTED":
        return "preempted"
    if job.state == "REVOKED":
        return "revoked by the federation"
    if job.state == "CANCELLED":
        if by_us:
            return "cancelled by hcflask"
        return f"cancelled by admin ({user})" if user else "cancelled by admin"
    code = exit_code if exit_code is not None else job.exit_code
    if code is None:
        return f"{job.state.lower() or 'failed'}: {stderr_line}" if stderr_line else "failed"
    if job.signal:
        return f"killed by signal {job.signal}" + (f": {stderr_line}" if stderr_line else "")
    return f"exit {code}: {stderr_line}" if stderr_line else f"exit {code}"


#: what a partition (and account, qos, ...) name may hold: no spaces, quotes or shell words
SLURM_NAME_RE = re.compile(r"[A-Za-z0-9_.\-+:,@%]{1,128}")
STRING_OPTIONS = ("account", "qos", "reservation", "constraint")


def clean_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The local checks of a slurm queue's options (before ``sbatch --test-only``)."""
    from hcflask.backends.sbatch_opts import check_extra_args

    cleaned = dict(options)
    partition = cleaned.get("partition")
    if partition in (None, ""):
        raise OptionError("partition", "a Slurm partition name is required")
    for key in ("partition", *STRING_OPTIONS):
        value = cleaned.get(key)
        if key not in cleaned:
            continue
        if not isinstance(value, str) or not SLURM_NAME_RE.fullmatch(value):
            raise OptionError(key, f"{value!r} is not a valid Slurm name (letters, digits, _.-+:,@%)")
    extra = cleaned.pop("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise OptionError("extra_args", "must be a list of strings")
    check_extra_args(extra)
    if extra:
        cleaned["extra_args"] = extra
    return cleaned


def option_field(message: str, options: Mapping[str, Any]) -> str:
    """Which queue option an ``sbatch --test-only`` refusal is about (``backend`` when none is named)."""
    low = message.lower()
    for field in ("partition", "reservation", "qos", "account", "constraint"):
        if field in low:
            return field
    if "feature" in low:
        return "constraint"
    return "extra_args" if options.get("extra_args") else "backend"


def collect_names(found: dict[str, str], stdout: str, names: set[str]) -> None:
    """Add ``id|name`` lines; the lowest id wins if a name was ever submitted twice."""
    for line in stdout.splitlines():
        job_id, _, name = line.strip().partition("|")
        if name in names and job_id.isdigit() and (name not in found or int(job_id) < int(found[name])):
            found[name] = job_id

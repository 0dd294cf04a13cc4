"""Judging a finished job: success rules and metrics.

Pure functions of the workload, the wrapper's result and the output, so
they are easy to test and the same for every backend.  The backend's
verdict comes first (a timeout or node failure is the reason, whatever the
output says); then the exit code; then the must-match / must-not-match
patterns over stdout and stderr; then metric references.

Some backends keep the payload's output where the job ran (a PanDA pilot
keeps it in its log tarball): their result file says ``"source"`` and has
no local stdout.  Then the output rules cannot be checked; the job is
judged by its exit code and the verdict says so, rather than failing every
job for a missing pattern.

A probe that cannot apply where it ran (no GPU, no ``/cvmfs``) says so with
a line ``hc-not-applicable: <reason>`` or, where its template opts in, with
``success.not_applicable_exit_code`` (4 in the catalogue).  That is a third
outcome, ``not_applicable`` (ETF's UNKNOWN): neither a success nor a failure.
The backend's verdict still comes first, so a timeout is never hidden by it.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from hcflask.backends.base import Status
from hcflask.backends.jobscript import NO_RUNTIME_EXIT
from hcflask.data import stagein, stageout
from hcflask.states import JobState

#: the marker line of a probe that does not apply here, and its reason
NOT_APPLICABLE_RE = re.compile(r"^hc-not-applicable:[ \t]*(.*)$", re.MULTILINE)


@dataclasses.dataclass
class Verdict:
    state: JobState
    reason: str = ""
    exit_code: int | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)


def hms(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def extract_metrics(metrics: Mapping[str, Mapping[str, Any]], output: str) -> dict[str, float]:
    """Named regex groups → numbers; the last match wins (a job may print progress)."""
    values: dict[str, float] = {}
    for name, spec in metrics.items():
        pattern = re.compile(spec["pattern"], re.MULTILINE)
        matches = list(pattern.finditer(output))
        if not matches:
            continue
        match = matches[-1]
        groups = match.groupdict()
        first = match.group(1 if match.re.groups else 0)  # no group: the whole match is the value
        raw = groups.get(name) if name in groups else (next(iter(groups.values())) if groups else first)
        try:
            values[name] = float(raw or "")
        except (TypeError, ValueError):
            continue
    return values


def check_references(metrics: Mapping[str, Mapping[str, Any]], values: Mapping[str, float]) -> str:
    """'' if every metric is within its reference, else the first complaint."""
    for name, spec in metrics.items():
        ref = spec.get("reference") or {}
        if name not in values or not ref:
            continue
        value = values[name]
        unit = f" {spec['unit']}" if spec.get("unit") else ""
        if "lower" in ref and value < ref["lower"]:
            return f"performance: {name}={value:g}{unit} below lower limit {ref['lower']:g}"
        if "upper" in ref and value > ref["upper"]:
            return f"performance: {name}={value:g}{unit} above upper limit {ref['upper']:g}"
    return ""


def judge(
    workload: Mapping[str, Any],
    status: Status,
    result: Mapping[str, Any] | None,
    stdout: str,
    stderr: str,
) -> Verdict:
    """The final state and reason of a job the backend reports finished."""
    metrics_spec = workload.get("metrics") or {}
    values = extract_metrics(metrics_spec, stdout)
    values.update(status.metrics)
    values.update(stagein.metrics(result))
    values.update(stageout.metrics(result))
    exit_code = int(result["exit_code"]) if result and "exit_code" in result else status.exit_code
    if status.state in (JobState.CANCELLED, JobState.LOST):
        return Verdict(status.state, status.reason or status.state.value, exit_code, values)
    if result and result.get("stagein_error"):  # the payload did not run: the storage is the reason
        return Verdict(JobState.FAILED, str(result["stagein_error"]), exit_code, values)
    if result and result.get("stageout_error"):  # the payload did its part; writing back failed
        return Verdict(JobState.FAILED, str(result["stageout_error"]), exit_code, values)
    if result and result.get("timeout"):
        walltime = int((workload.get("resources") or {}).get("walltime", 0))
        return Verdict(JobState.FAILED, f"timeout after {hms(walltime)}", exit_code, values)
    if status.state is JobState.FAILED and status.reason:
        # a batch system's "exit N" is only the payload's exit code: a probe may mean "not applicable"
        not_applicable = _not_applicable(workload, exit_code, stdout) if status.reason.startswith("exit ") else None
        if not_applicable is not None:
            return Verdict(JobState.NOT_APPLICABLE, not_applicable, exit_code, values)
        return Verdict(JobState.FAILED, status.reason, exit_code, values)
    if result is None and exit_code is None:
        return Verdict(JobState.FAILED, status.reason or "the job left no result file", None, values)
    expected = int((workload.get("success") or {}).get("exit_code", 0))
    not_applicable = _not_applicable(workload, exit_code, stdout)
    if not_applicable is not None:
        return Verdict(JobState.NOT_APPLICABLE, not_applicable, exit_code, values)
    kept_by = str(result.get("source") or "") if result and not stdout else ""
    if exit_code != expected:
        detail = last_line(stderr) or last_line(stdout)
        if exit_code == NO_RUNTIME_EXIT and "container runtime" in detail:
            return Verdict(JobState.FAILED, detail, exit_code, values)
        return Verdict(JobState.FAILED, f"exit {exit_code}" + (f": {detail}" if detail else ""), exit_code, values)
    if kept_by:
        return Verdict(JobState.SUCCEEDED, f"output rules not checked: the output stays with {kept_by}",
                       exit_code, values)
    return _judge_output(workload, exit_code, values, stdout + "\n" + stderr)


def _not_applicable(workload: Mapping[str, Any], exit_code: int | None, stdout: str) -> str | None:
    """The reason the job says it does not apply (the marker line's, last one wins), or None."""
    markers = NOT_APPLICABLE_RE.findall(stdout)
    code = (workload.get("success") or {}).get("not_applicable_exit_code")
    if markers:
        return markers[-1].strip()[:300] or "the probe does not apply here"
    if code is not None and exit_code == int(code):
        return f"exit {exit_code}: the probe does not apply here"
    return None


def _judge_output(workload: Mapping[str, Any], exit_code: int | None, values: dict[str, float],
                  output: str) -> Verdict:
    success = workload.get("success") or {}
    for pattern in success.get("must_match") or []:
        if not re.search(pattern, output, re.MULTILINE):
            return Verdict(JobState.FAILED, f"output lacks required pattern {pattern!r}", exit_code, values)
    for pattern in success.get("must_not_match") or []:
        match = re.search(pattern, output, re.MULTILINE)
        if match:
            line = output[: match.end()].rsplit("\n", 1)[-1] + output[match.end():].split("\n", 1)[0]
            return Verdict(JobState.FAILED, f"forbidden pattern {pattern!r} in output: {line.strip()[:200]}",
                           exit_code, values)
    complaint = check_references(workload.get("metrics") or {}, values)
    if complaint:
        return Verdict(JobState.FAILED, complaint, exit_code, values)
    return Verdict(JobState.SUCCEEDED, "", exit_code, values)

"""The self-contained job wrapper every backend runs.

Nothing of hcflask is needed where the job runs: the wrapper is one bash
script (bash + coreutils) that carries the workload inside it, exports the
``HC_*`` variables, keeps the workload's stdout/stderr and writes a small
JSON result file (exit code, start/end epoch seconds, host).  The engine
reads that file to judge the job, so a batch system that has forgotten a
job long ago still cannot hide its outcome (the cylc way).

Files in the job's work dir:

``job.sh``        this wrapper            ``payload.sh``  the workload
``stdout``        workload's stdout        ``stderr``      workload's stderr
``started.json``  written at start         ``result.json`` written at the end

Output is capped (``[jobs] output_cap`` bytes per stream): the wrapper keeps
the first and the last half of each stream and cuts the middle, with a
marker line, so a runaway ``yes`` cannot fill the disk while the banner a
success rule looks for (head) and the metric printed at the end (tail)
are still there.  ``result.json`` says which stream was cut.
"""
from __future__ import annotations

import json
import re
import secrets
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hcflask.data import stageout
from hcflask.data.stagein import STAGEIN_ERROR, read_into

WRAPPER = "job.sh"
RESULT = "result.json"
STARTED = "started.json"
STDOUT = "stdout"
STDERR = "stderr"
#: bash's ``times`` after the payload: its second line is the CPU time of the payload (user, system)
TIMES = "times"
TIMES_RE = re.compile(r"^(\d+)m(\d+(?:[.,]\d+)?)s$")
#: exit code of the payload when no container runtime is found on the node
NO_RUNTIME_EXIT = 97
#: exit code of coreutils ``timeout`` when the walltime ran out
TIMEOUT_EXIT = 124
#: bytes of stdout and of stderr kept by default (head and tail, half each)
OUTPUT_CAP = 10 * 1024 * 1024
CUT_MARKER = "[hcflask: output cut here]"


def payload_script(workload: Mapping[str, Any]) -> str:
    """The workload as a bash script: its own script, or a container command."""
    image = workload.get("image")
    if not image:
        return str(workload.get("script", ""))
    gpus = int((workload.get("resources") or {}).get("gpus", 0) or 0)
    nv = " --nv" if gpus else ""
    command = str(workload.get("command") or workload.get("script") or "true")
    return (
        "if command -v apptainer >/dev/null 2>&1; then hc_rt=apptainer\n"
        "elif command -v singularity >/dev/null 2>&1; then hc_rt=singularity\n"
        "else echo \"hcflask: no container runtime (apptainer or singularity) on $(hostname)\" >&2\n"
        f"  exit {NO_RUNTIME_EXIT}\nfi\n"
        f"exec \"$hc_rt\" exec{nv} {shlex.quote(str(image))} bash -c {shlex.quote(command)}\n"
    )


def render(
    *,
    payload: str,
    env: Mapping[str, str],
    workdir: Path | None,
    walltime: int | None = None,
    header: str = "",
    output_cap: int = OUTPUT_CAP,
    stagein: str = "",
    stageout: str = "",
) -> str:
    """The wrapper's text.

    ``workdir`` None means "the directory the wrapper is started in" (a
    PanDA pilot's own directory).  ``walltime`` makes the wrapper enforce
    the limit itself (TERM, then KILL 10 s later), for backends that do not.
    ``stagein`` is bash that fetches the job's input files first
    (:func:`hcflask.data.stagein.block`); when it sets ``hc_stagein_rc``
    the payload does not run and the job exits with that code.
    ``stageout`` is bash run after it (:func:`hcflask.data.stageout.block`),
    which may change the exit code when writing back failed.
    """
    delimiter = "HC_PAYLOAD_" + secrets.token_hex(8)
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(env.items()))
    where = shlex.quote(str(workdir)) if workdir else '"$PWD"'
    limit = f"timeout -s TERM -k 10 {int(walltime)} " if walltime else ""
    tail_bytes = max(1, int(output_cap) // 2)
    head_bytes = max(1, int(output_cap) - tail_bytes)
    return f"""#!/bin/bash
{header}# hcflask job wrapper (generated): runs the payload, keeps its output,
# writes {RESULT}. Needs bash and coreutils only.
export {exports}
HC_WORKDIR={where}
export HC_WORKDIR
mkdir -p "$HC_WORKDIR" && cd "$HC_WORKDIR" || exit 90
hc_host=$(hostname)  # not $HOSTNAME: an environment passed on by the batch system may carry the submit host's
hc_now() {{  # epoch seconds: bash 5's clock, else date (one process less per call where it can)
  if [ -n "${{EPOCHREALTIME:-}}" ]; then hc_t=${{EPOCHREALTIME/,/.}}; else hc_t=$(date +%s.%N); fi
}}
hc_now; hc_start=$hc_t
printf '{{"host": "%s", "start": %s}}\\n' "$hc_host" "$hc_start" > {STARTED}
cat > payload.sh <<'{delimiter}'
{payload.rstrip()}
{delimiter}
hc_stagein_rc=0
{stagein.rstrip()}
hc_keep() {{  # stdin -> $1: the first {head_bytes} bytes, and the last {tail_bytes}+1 in $1.tail
  {{ head -c {head_bytes} > "$1"; tail -c {tail_bytes + 1} > "$1.tail"; }}
}}
hc_join() {{  # $1 += its tail (cut to {tail_bytes} bytes after a marker); hc_cut says whether it was cut
  hc_cut=false
  if [ ! -s "$1.tail" ]; then  # all of it fit in the head (the usual case): no process to start
    :
  elif [ "$(wc -c < "$1.tail")" -gt {tail_bytes} ]; then
    printf '\\n{CUT_MARKER}: kept the first {head_bytes} and the last {tail_bytes} bytes\\n' >> "$1"
    tail -c {tail_bytes} "$1.tail" >> "$1"; hc_cut=true
  else
    cat "$1.tail" >> "$1"
  fi
}}
rm -f {STDOUT}.pipe {STDERR}.pipe && mkfifo {STDOUT}.pipe {STDERR}.pipe || exit 91
hc_keep {STDOUT} < {STDOUT}.pipe & hc_out=$!
hc_keep {STDERR} < {STDERR}.pipe & hc_err=$!
if [ "$hc_stagein_rc" -eq 0 ]; then
  {limit}bash ./payload.sh > {STDOUT}.pipe 2> {STDERR}.pipe < /dev/null
  hc_rc=$?
else  # the payload does not run: stderr says why (where the backend keeps only the streams, as PanDA)
  : > {STDOUT}.pipe; cat {STAGEIN_ERROR} > {STDERR}.pipe; hc_rc=$hc_stagein_rc
fi
times > {TIMES}
{{ read -r _; read -r hc_cpu; }} < {TIMES}
wait "$hc_out" "$hc_err"
hc_join {STDOUT}; hc_cut_out=$hc_cut
hc_join {STDERR}; hc_cut_err=$hc_cut
rm -f {STDOUT}.pipe {STDERR}.pipe {STDOUT}.tail {STDERR}.tail
{stageout.rstrip()}
hc_now; hc_end=$hc_t
hc_timeout=false
[ -n "{limit}" ] && [ "$hc_rc" -eq {TIMEOUT_EXIT} ] && hc_timeout=true
printf '{{"exit_code": %d, "start": %s, "end": %s, "host": "%s", "timeout": %s, ' "$hc_rc" "$hc_start" "$hc_end" \\
  "$hc_host" "$hc_timeout" > {RESULT}.part
printf '"stdout_cut": %s, "stderr_cut": %s, "cpu": "%s"}}\\n' "$hc_cut_out" "$hc_cut_err" "$hc_cpu" >> {RESULT}.part
mv -f {RESULT}.part {RESULT}
exit "$hc_rc"
"""


def write(workdir: Path, text: str) -> Path:
    """Write the wrapper into ``workdir`` (created) and make it executable."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / WRAPPER
    path.write_text(text)
    path.chmod(0o755)
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write a small JSON file atomically (readers never see half of it)."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(dict(data)))
    part.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_result(workdir: Path) -> dict[str, Any] | None:
    """The wrapper's result, or None while the job has not finished (with its stage-in's and stage-out's)."""
    result = read_json(workdir / RESULT)
    return None if result is None else stageout.read_into(workdir, read_into(workdir, result))


def read_started(workdir: Path) -> dict[str, Any] | None:
    return read_json(workdir / STARTED)


def to_datetime(epoch: Any) -> datetime | None:
    """Epoch seconds from a result file as naive UTC (None if absent or bad)."""
    try:
        return datetime.fromtimestamp(float(epoch), UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):
        return None


def cpu_seconds(result: Mapping[str, Any] | None) -> float | None:
    """User + system CPU seconds of the payload from the result's ``times`` line (``0m1.250s 0m0.010s``)."""
    words = str((result or {}).get("cpu") or "").split()
    found = [TIMES_RE.match(word) for word in words]
    if len(words) != 2 or not all(found):
        return None
    return sum(int(m[1]) * 60 + float(m[2].replace(",", ".")) for m in found if m)


def ends(path: Path, limit: int) -> str:
    """The whole file if it fits in ``limit`` bytes, else its first and last halves (for judging)."""
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    if size <= limit:
        return tail(path, limit)
    with path.open("rb") as fh:
        head = fh.read(limit // 2).decode("utf-8", "replace")
    return head + "\n" + tail(path, limit // 2)


def tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a file, decoded leniently ('' if missing)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""

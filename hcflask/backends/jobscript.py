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
import os
import re
import shlex
import stat
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hcflask.data import stageout
from hcflask.data.stagein import STAGEIN_ERROR, STAGEIN_JSON, read_into

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
#: the named pipes the wrapper runs the payload with (the payload's streams, and its end)
PIPES = ("stdout.pipe", "stderr.pipe", "ended.pipe")
#: what a stage-in or stage-out leaves for the result (read with it)
STAGING_FILES = frozenset({STAGEIN_JSON, STAGEIN_ERROR, stageout.STAGEOUT_JSON, stageout.STAGEOUT_ERROR})


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
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(env.items()))
    tail_bytes = max(1, int(output_cap) // 2)
    values = {
        "HEADER": header, "EXPORTS": exports, "RESULT": RESULT, "STARTED": STARTED, "TIMES": TIMES,
        "WHERE": shlex.quote(str(workdir)) if workdir else '"$PWD"',
        "PAYLOAD": shlex.quote(payload.rstrip()), "STAGEIN": stagein.rstrip(), "STAGEOUT": stageout.rstrip(),
        "STAGEIN_ERROR": STAGEIN_ERROR, "WALLTIME": str(int(walltime)) if walltime else "",
        "TIMEOUT_EXIT": str(TIMEOUT_EXIT), "CUT_MARKER": CUT_MARKER,
        "HEAD_BYTES": str(max(1, int(output_cap) - tail_bytes)), "TAIL_BYTES": str(tail_bytes),
        "TAIL_KEEP": str(tail_bytes + 1),
        # the quick way needs all of a short payload's output to fit in its pipe and in the cap
        "QUICK": QUICK_SECONDS if int(output_cap) >= PIPE_MAX else "0",
        "CAP": str(int(output_cap)), "TIDY": "true" if workdir is None else "false", "PIPES": " ".join(PIPES),
    }
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m[1]], _WRAPPER)


#: how long the wrapper waits for a payload's end before it starts the processes that keep its
#: output as it comes; most test payloads that end sooner printed less than a pipe holds
QUICK_SECONDS = "0.5"
#: the most a pipe holds unless its owner is root (/proc/sys/fs/pipe-max-size)
PIPE_MAX = 1024 * 1024

# The wrapper.  Every process it starts costs a millisecond or two of CPU, so for a short
# job the wrapper is most of the job's cost: it uses bash builtins wherever one does the
# work (the host from /proc, the payload and the result written by printf), and for a
# payload that ends within QUICK_SECONDS (the usual test job) it starts one process to keep
# its output instead of four: the output is still in the pipes, so "head" of the stream
# that has some is all it takes.  A longer payload gets the keepers that cut a long stream
# to its head and tail (bounded disk use however much it prints).
_WRAPPER = r"""#!/bin/bash
@HEADER@# hcflask job wrapper (generated): runs the payload, keeps its output,
# writes @RESULT@. Needs bash and coreutils only.
export @EXPORTS@
HC_WORKDIR=@WHERE@
export HC_WORKDIR
{ [ -d "$HC_WORKDIR" ] || mkdir -p "$HC_WORKDIR"; } && cd "$HC_WORKDIR" || exit 90
# not $HOSTNAME: an environment passed on by the batch system may carry the submit host's
read -r hc_host < /proc/sys/kernel/hostname 2> /dev/null || hc_host=$(hostname)
hc_now() {  # epoch seconds: bash 5's clock, else date (one process less per call where it can)
  if [ -n "${EPOCHREALTIME:-}" ]; then hc_t=${EPOCHREALTIME/,/.}; else hc_t=$(date +%s.%N); fi
}
hc_now; hc_start=$hc_t
printf '{"host": "%s", "start": %s}\n' "$hc_host" "$hc_start" > @STARTED@
printf '%s\n' @PAYLOAD@ > payload.sh
hc_stagein_rc=0
@STAGEIN@
hc_keep() {  # stdin -> $1: the first @HEAD_BYTES@ bytes, and the last @TAIL_KEEP@ in $1.tail
  head -c @HEAD_BYTES@ > "$1"; exec tail -c @TAIL_KEEP@ > "$1.tail"
}
hc_join() {  # $1 += its tail (cut to @TAIL_BYTES@ bytes after a marker); hc_cut says whether it was cut
  hc_cut=false
  if [ ! -s "$1.tail" ]; then  # all of it fit in the head (the usual case): no process to start
    :
  elif [ "$(wc -c < "$1.tail")" -gt @TAIL_BYTES@ ]; then
    printf '\n@CUT_MARKER@: kept the first @HEAD_BYTES@ and the last @TAIL_BYTES@ bytes\n' >> "$1"
    tail -c @TAIL_BYTES@ "$1.tail" >> "$1"; hc_cut=true
  else
    cat "$1.tail" >> "$1"
  fi
}
hc_ended() {  # the payload ended (a zombie has: only its exit status is not collected yet); $1 tries
  # a millisecond apart, as an exit closes the process's files, and so the pipe, a moment before it
  # becomes a zombie (tries in a row would take the CPU the exit needs)
  local hc_i hc_s hc_nap= hc_rc=1
  for ((hc_i = 1; ; hc_i++)); do
    if read -r _ _ hc_s _ 2> /dev/null < "/proc/$hc_pid/stat"; then [ "$hc_s" = Z ] && hc_rc=0
    else kill -0 "$hc_pid" 2> /dev/null || hc_rc=0; fi
    [ "$hc_rc" -eq 0 ] || [ "$hc_i" -ge "$1" ] && break
    # a nap without a process: nothing is ever written into the ended pipe, so a read of it
    # opened read-write waits for its time out (closed again: its end of file still tells)
    [ -n "$hc_nap" ] || exec {hc_nap}<> ended.pipe
    read -t 0.001 -u "$hc_nap"
  done
  [ -z "$hc_nap" ] || exec {hc_nap}>&-
  return "$hc_rc"
}
hc_cut_out=false; hc_cut_err=false; hc_timeout=false
if [ "$hc_stagein_rc" -eq 0 ]; then
  # three pipes (write() makes them where the work dir is prepared ahead): stdout, stderr, and
  # "ended", which only the payload holds open: its end of file wakes the wrapper when the payload
  # (and whatever it left running with it open) has ended
  for hc_p in @PIPES@; do
    [ -p "$hc_p" ] || { rm -f "$hc_p" && mkfifo "$hc_p"; } || exit 91
  done
  # both ends of each, read-write first so that no open waits for the other end
  exec {hc_ow}<> stdout.pipe {hc_or}< stdout.pipe {hc_ew}<> stderr.pipe {hc_er}< stderr.pipe
  exec {hc_tw}<> ended.pipe {hc_tr}< ended.pipe
  set -m  # the payload in a process group of its own, so that a walltime stops all of it
  bash ./payload.sh < /dev/null >&"$hc_ow" 2>&"$hc_ew" {hc_ow}>&- {hc_ew}>&- {hc_or}<&- {hc_er}<&- {hc_tr}<&- &
  hc_pid=$!
  set +m
  trap 'kill -TERM -- "-$hc_pid" 2> /dev/null' TERM  # a cancel reaches the payload's group too
  exec {hc_tw}>&-
  hc_wall=@WALLTIME@
  hc_deadline=$((SECONDS + ${hc_wall:-0}))
  hc_quick=false
  if [ "@QUICK@" != 0 ]; then
    read -t @QUICK@ -u "$hc_tr"
    hc_ended $(($? == 1 ? 100 : 1)) && hc_quick=true
  fi
  if [ "$hc_quick" = true ]; then  # a short payload: all its output waits in the pipes
    wait "$hc_pid"; hc_rc=$?
    times > @TIMES@
    # a pipe with a writer open is readable only when it holds something: a process only then
    if read -t 0 -u "$hc_or"; then exec {hc_ow}>&-; head -c @CAP@ <&"$hc_or" > stdout; else : > stdout; fi
    if read -t 0 -u "$hc_er"; then exec {hc_ew}>&-; head -c @CAP@ <&"$hc_er" > stderr; else : > stderr; fi
  else  # a long one: keep its output as it comes, stop it at the walltime
    hc_keep stdout <&"$hc_or" {hc_ow}>&- {hc_ew}>&- {hc_er}<&- {hc_tr}<&- & hc_out=$!
    hc_keep stderr <&"$hc_er" {hc_ow}>&- {hc_ew}>&- {hc_or}<&- {hc_tr}<&- & hc_err=$!
    exec {hc_ow}>&- {hc_ew}>&- {hc_or}<&- {hc_er}<&-
    if [ -z "$hc_wall" ]; then
      wait "$hc_pid"
    else
      hc_step=  # seconds to sleep when the end of file no longer tells the payload's end
      while ! hc_ended 1; do
        if [ "$SECONDS" -ge "$hc_deadline" ]; then
          if [ "$hc_timeout" = false ]; then
            hc_timeout=true; kill -TERM -- "-$hc_pid" 2> /dev/null; hc_deadline=$((SECONDS + 10))
          else
            kill -KILL -- "-$hc_pid" 2> /dev/null; break
          fi
        fi
        read -t "${hc_step:-$((hc_deadline - SECONDS + 1))}" -u "$hc_tr"
        # the end of file came while the payload runs (it closed the pipe): from now on a 1 s sleep
        [ $? -eq 1 ] && ! hc_ended 100 && { exec {hc_tw}<> ended.pipe; hc_tr=$hc_tw; hc_step=1; }
      done
    fi
    wait "$hc_pid"; hc_rc=$?
    [ "$hc_timeout" = true ] && hc_rc=@TIMEOUT_EXIT@
    times > @TIMES@
    wait "$hc_out" "$hc_err"
    hc_join stdout; hc_cut_out=$hc_cut
    hc_join stderr; hc_cut_err=$hc_cut
    rm -f stdout.tail stderr.tail
  fi
  trap - TERM
  [ "@TIDY@" = true ] && rm -f @PIPES@
else  # the payload does not run: stderr says why (where the backend keeps only the streams, as PanDA)
  : > stdout; cat @STAGEIN_ERROR@ > stderr; hc_rc=$hc_stagein_rc
  times > @TIMES@
fi
{ read -r _; read -r hc_cpu; } < @TIMES@
[ -n "${hc_in_clean:-}" ] && rm -rf -- "$hc_in_clean"  # the staged-in copies (set by the stage-in)
@STAGEOUT@
hc_now; hc_end=$hc_t
# one printf, so one write: a reader sees no file, an empty one (not parsed: not finished yet) or all of it
hc_fmt='{"exit_code": %d, "start": %s, "end": %s, "host": "%s", "timeout": %s, '
hc_fmt+='"stdout_cut": %s, "stderr_cut": %s, "cpu": "%s"}\n'
printf "$hc_fmt" "$hc_rc" "$hc_start" "$hc_end" "$hc_host" "$hc_timeout" \
  "$hc_cut_out" "$hc_cut_err" "$hc_cpu" > @RESULT@
exit "$hc_rc"
"""


def write(workdir: Path, text: str) -> Path:
    """Write the wrapper into ``workdir`` (created) and make it executable, with the
    :data:`PIPES` it runs the payload with (the wrapper makes them itself where they are missing)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / WRAPPER
    with open(path, "w", opener=lambda p, flags: os.open(p, flags, 0o755)) as fh:
        os.fchmod(fh.fileno(), 0o755)  # whatever the umask and an earlier file's mode
        fh.write(text)
    for name in PIPES:  # a new work dir has none: no look first
        pipe = f"{workdir}/{name}"
        try:
            os.mkfifo(pipe)
        except FileExistsError:
            if not stat.S_ISFIFO(os.lstat(pipe).st_mode):
                os.unlink(pipe)
                os.mkfifo(pipe)
    return path


def tidy(workdir: Path) -> None:
    """Remove the wrapper's pipes once its result is written (a short job's wrapper leaves them:
    one process less per job; the service removes them with a system call)."""
    for name in PIPES:
        try:
            (workdir / name).unlink()
        except OSError:
            continue


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


def read_result(workdir: Path, present: Collection[str] | None = None) -> dict[str, Any] | None:
    """The wrapper's result, or None while the job has not finished (with its stage-in's and
    stage-out's).  ``present``: the names of the work dir, listed after the result was written
    (the stage-in and stage-out files come before it), so that a job without them is read
    without four opens that fail."""
    result = read_json(workdir / RESULT)
    if result is None or (present is not None and not STAGING_FILES & set(present)):
        return result
    return stageout.read_into(workdir, read_into(workdir, result))


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

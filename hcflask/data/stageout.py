"""Stage-out: the part of the job wrapper that writes a job's output back to an RSE (issue 22 item 6).

A template with ``outputs: {rse: X, lifetime: 3600}`` makes every job test
the write path of a storage the way production jobs use it: after the
payload exits as expected, the wrapper uploads one small file with Rucio's
own ``rucio upload`` (``--lifetime``: the replication rule expires, so test
outputs never fill the storage), then downloads it back with ``rucio
download`` (which checks the adler32 Rucio registered) and compares the
bytes.  The payload may write the file itself (``$HC_OUTPUT_FILE``);
otherwise the wrapper writes a small JSON summary of the job.

The ``rucio`` command runs with an argument list (bash arrays, values
quoted here); nothing of the template reaches a shell as code.  The
outcome goes beside ``result.json``: ``stageout.json`` (file, bytes, start,
end) and ``stageout.error``, one line starting ``stage-out failed:`` that
names the file and the RSE.  A failed stage-out makes the job exit
:data:`STAGEOUT_EXIT`.
"""
from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STAGEOUT_JSON = "stageout.json"
STAGEOUT_ERROR = "stageout.error"
#: rucio's own words on the upload and the read-back, for the admin who looks into a job
STAGEOUT_LOG = "stageout.log"
#: exit code of a job whose payload succeeded but whose stage-out failed
STAGEOUT_EXIT = 94
#: seconds the upload, and then the read-back, may take each
STEP_TIMEOUT = 900
#: the metrics of every job of a test with ``outputs`` (name → unit)
METRICS = {"output_bytes": "B", "stageout_seconds": "s"}


def scope_of(outputs: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The scope of the output files: the template's, else ``[rucio] output_scope``, else user.<account>."""
    return str(outputs.get("scope") or config.get("RUCIO_OUTPUT_SCOPE")
               or f"user.{config.get('RUCIO_ACCOUNT') or 'root'}")


def prologue(outputs: Mapping[str, Any] | None) -> str:
    """Bash run before the payload: names the output file and exports ``HC_OUTPUT_FILE``."""
    if not outputs:
        return ""
    # unique per job and per run of it (a batch system may run a job twice): job name + start time
    return ('mkdir -p outputs\n'
            'hc_out_name="$HC_JOB_NAME.$(date -u +%Y%m%dT%H%M%S).$$.out"\n'
            'export HC_OUTPUT_FILE="$PWD/outputs/$hc_out_name"\n')


def block(outputs: Mapping[str, Any] | None, scope: str, expected_exit: int) -> str:
    """The bash run after the payload ('' without outputs): uploads, reads back, may set ``hc_rc``."""
    if not outputs:
        return ""
    rse = str(outputs["rse"])
    values = {"@RSE@": shlex.quote(rse), "@SCOPE@": shlex.quote(scope),
              "@LIFETIME@": str(int(outputs["lifetime"])), "@EXPECTED@": str(int(expected_exit)),
              "@TIMEOUT@": str(STEP_TIMEOUT), "@JSON@": STAGEOUT_JSON, "@ERROR@": STAGEOUT_ERROR,
              "@EXIT@": str(STAGEOUT_EXIT), "@LOG@": STAGEOUT_LOG}
    text = _STAGEOUT
    for key, value in values.items():
        text = text.replace(key, value)
    return text


_STAGEOUT = r"""if [ "$hc_rc" -eq @EXPECTED@ ]; then  # only a payload that did its part writes back
  hc_so_rse=@RSE@; hc_so_scope=@SCOPE@
  hc_so_start=$(date +%s.%N)
  [ -s "$HC_OUTPUT_FILE" ] || printf '{"job": "%s", "host": "%s", "start": %s, "exit_code": %d}\n' \
    "$HC_JOB_NAME" "$hc_host" "$hc_start" "$hc_rc" > "$HC_OUTPUT_FILE"
  hc_so_bytes=$(stat -c %s "$HC_OUTPUT_FILE")
  hc_so_why=""
  hc_so_last() {  # why rucio failed: its ERROR lines on (without colours and time stamps), else its last line
    printf '%s\n' "$1" | sed 's/\x1b\[[0-9;]*m//g' | tr -d '\r' | grep -v '^[[:space:]]*$' > outputs/.rucio
    if grep -q 'ERROR' outputs/.rucio; then
      sed -n '/ERROR/,$p' outputs/.rucio | sed 's/^[0-9-]* [0-9:,.]*[[:space:]]*ERROR[[:space:]]*//' | tr '\n' ' '
    else tail -n 1 outputs/.rucio; fi | sed 's/[[:space:]]*$//' | cut -c1-300
  }
  # rucio's exit code is 0 after some failures: the upload's summary file and the bytes read back decide
  rm -rf rucio_upload.json outputs/readback
  if ! command -v rucio > /dev/null 2>&1; then
    hc_so_why="rucio: command not found (the node needs rucio-clients)"
  else
    hc_so_out=$(timeout -k 10 @TIMEOUT@ rucio upload --rse "$hc_so_rse" --scope "$hc_so_scope" --lifetime @LIFETIME@ \
      --register-after-upload --summary "$HC_OUTPUT_FILE" 2>&1 < /dev/null)
    printf '%s\n' "$hc_so_out" > @LOG@
    if ! grep -qF "\"$hc_so_scope:$hc_out_name\"" rucio_upload.json 2> /dev/null; then
      hc_so_why="rucio upload: $(hc_so_last "$hc_so_out")"
    else
      hc_so_out=$(timeout -k 10 @TIMEOUT@ rucio download --rses "$hc_so_rse" --dir outputs/readback --no-subdir \
        "$hc_so_scope:$hc_out_name" 2>&1 < /dev/null)
      printf '%s\n' "$hc_so_out" >> @LOG@
      if [ ! -f "outputs/readback/$hc_out_name" ]; then
        hc_so_why="read back: rucio download: $(hc_so_last "$hc_so_out")"
      elif ! cmp -s "$HC_OUTPUT_FILE" "outputs/readback/$hc_out_name"; then
        hc_so_why="read back: the bytes read differ from the bytes written"
      fi
    fi
  fi
  hc_so_end=$(date +%s.%N)
  printf '{"file": "%s", "rse": "%s", "bytes": %d, "start": %s, "end": %s}\n' "$hc_out_name" "$hc_so_rse" \
    "$hc_so_bytes" "$hc_so_start" "$hc_so_end" > @JSON@
  if [ -n "$hc_so_why" ]; then
    printf 'stage-out failed: %s:%s to %s: %s\n' "$hc_so_scope" "$hc_out_name" "$hc_so_rse" "$hc_so_why" > @ERROR@
    cat @ERROR@ >> stderr  # kept where the backend keeps only the streams (PanDA)
    hc_rc=@EXIT@
  fi
fi
"""


def read_into(workdir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the stage-out's outcome (``stageout``, ``stageout_error``) when there was one."""
    try:
        result["stageout"] = json.loads((workdir / STAGEOUT_JSON).read_text())
    except (OSError, ValueError):
        pass
    try:
        error = (workdir / STAGEOUT_ERROR).read_text(errors="replace").strip()
    except OSError:
        error = ""
    if error:
        result["stageout_error"] = error[:1000]
    return result


def metrics(result: Mapping[str, Any] | None) -> dict[str, float]:
    """output_bytes and stageout_seconds (upload and read-back) of a job that staged out."""
    info = (result or {}).get("stageout")
    if not isinstance(info, Mapping):
        return {}
    out = {"output_bytes": float(info.get("bytes") or 0)}
    try:
        out["stageout_seconds"] = round(float(info["end"]) - float(info["start"]), 6)
    except (KeyError, TypeError, ValueError):
        pass
    return out

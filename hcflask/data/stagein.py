"""Stage-in: the part of the job wrapper that fetches and verifies a job's input files.

Generated bash (the wrapper stays bash + coreutils, plus the transfer tool
of each scheme): ``copy`` fetches every file into ``inputs/`` of the work
dir -- ``xrdcp`` for ``root://`` (all of a job's files in one xrdcp, which
prints the adler32 it computed while writing each; a file it did not bring
or with another sum is fetched again on its own with ``--cksum
adler32:<value>``, so the failure is told for that file), ``curl`` for
``http(s)://`` and ``davs://``, ``cp`` for a path -- checks its adler32
against the catalogue's (after curl or cp with ``xrdadler32``, else
Python's zlib) and exports
``HC_INPUT_FILES``; ``direct`` only exports ``HC_INPUT_URLS`` and the
payload reads the URLs itself.

The outcome goes to two files beside ``result.json`` that
:func:`read_into` merges into the result: ``stagein.json`` (numbers only:
files, bytes, start and end) and ``stagein.error``, one line starting
``stage-in failed:`` that names the file and the storage, so the robot's
signatures group the jobs of one broken storage together.  A failed
stage-in skips the payload; the job exits :data:`STAGEIN_EXIT`.
"""
from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hcflask.data.catalogue import storage_of

STAGEIN_JSON = "stagein.json"
STAGEIN_ERROR = "stagein.error"
#: exit code of a job whose stage-in failed (the payload did not run)
STAGEIN_EXIT = 93
#: seconds one file may take (xrdcp's own retries are shortened below as well)
FILE_TIMEOUT = 900
#: XRootD client settings unless the job's environment has them: fail in seconds, not
#: after XRootD's default of minutes of reconnects, so a dead storage is seen quickly
XRD_DEFAULTS = {"XRD_CONNECTIONRETRY": "2", "XRD_CONNECTIONWINDOW": "15", "XRD_REQUESTTIMEOUT": "300",
                "XRD_STREAMTIMEOUT": "120"}


#: the metrics every job of a test with inputs records (name → unit), beside the workload's own
METRICS = {"input_bytes": "B", "stagein_seconds": "s", "stagein_mb_per_s": "MB/s"}


def metric_specs(snapshot: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics of a test: its workload's, plus the stage-in's when it reads input data and
    the stage-out's when it writes back (so the report, the comparison and the stored units know them)."""
    from hcflask.data.stageout import METRICS as OUTPUT_METRICS

    specs = dict((snapshot.get("workload") or {}).get("metrics") or {})
    for section, metrics in (("inputs", METRICS), ("outputs", OUTPUT_METRICS)):
        if snapshot.get(section):
            for name, unit in metrics.items():
                specs.setdefault(name, {"pattern": "", "unit": unit, "reference": None})
    return specs


def _array(name: str, values: Sequence[str]) -> str:
    return f"{name}=({' '.join(shlex.quote(v) for v in values)})"


def block(inputs: Sequence[Mapping[str, Any]] | None, access: str) -> str:
    """The bash that stages ``inputs`` in ('' without inputs); sets ``hc_stagein_rc``."""
    if not inputs:
        return ""
    urls = [str(f["url"]) for f in inputs]
    where = [f"{f.get('rse') or 'local'}" + (f" ({storage_of(str(f['url']))})" if storage_of(str(f["url"])) else "")
             for f in inputs]
    lines = [
        _array("hc_in_urls", urls),
        f"export HC_INPUT_URLS={shlex.quote(' '.join(urls))}",
    ]
    if access == "direct":
        total = sum(int(f.get("bytes") or 0) for f in inputs)
        return "\n".join([*lines, f"printf '{{\"files\": %d, \"bytes\": %d, \"access\": \"direct\"}}\\n' "
                                  f"{len(inputs)} {total} > {STAGEIN_JSON}", ""])
    names = [f"{i:03d}-{f['name']}" for i, f in enumerate(inputs)]
    xrd = " ".join(f"{k}=${{{k}:-{v}}}" for k, v in XRD_DEFAULTS.items())
    lines += [
        _array("hc_in_names", names), _array("hc_in_sums", [str(f.get("adler32") or "") for f in inputs]),
        _array("hc_in_where", where),
        f"export {xrd}",
        _STAGEIN.replace("@TIMEOUT@", str(FILE_TIMEOUT)).replace("@JSON@", STAGEIN_JSON)
                 .replace("@ERROR@", STAGEIN_ERROR).replace("@EXIT@", str(STAGEIN_EXIT)),
    ]
    return "\n".join(lines)


_STAGEIN = r"""hc_adler32() {  # the adler32 of file $1, 8 lowercase hex digits
  if command -v xrdadler32 > /dev/null 2>&1; then xrdadler32 "$1" | cut -d' ' -f1
  else python3 -c 'import sys, zlib
s = 1
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""): s = zlib.adler32(b, s)
print("%08x" % s)' "$1"; fi
}
hc_now; hc_in_start=$hc_t
mkdir -p inputs
hc_in_clean=inputs  # the copies go once the payload has ended (the wrapper removes them)
hc_in_bytes=0
hc_in_files=""
# root:// files with a checksum go through one xrdcp first: a start of xrdcp costs as much CPU as tens of MB
# copied, and it prints the adler32 it computed while writing each file, compared here with the catalogue's.
# A file it did not bring, or with another sum, is fetched again on its own below, so the failure is told in
# xrdcp's words for that file.  Its files stay where it wrote them, inputs/xrd/<name>
# (renaming them took a process per file).
declare -A hc_done=() hc_base=() hc_path=()
for hc_i in "${!hc_in_urls[@]}"; do
  hc_u=${hc_in_urls[$hc_i]}; hc_b=${hc_u##*/}
  case "$hc_u" in root://*\?*|root://*/) ;; root://*)
    [ -n "${hc_in_sums[$hc_i]}" ] && [ -n "$hc_b" ] && [ -z "${hc_base[$hc_b]:-}" ] && hc_base[$hc_b]=$hc_i ;;
  esac
done
if [ "${#hc_base[@]}" -gt 1 ]; then
  hc_src=(); for hc_i in "${hc_base[@]}"; do hc_src+=("${hc_in_urls[$hc_i]}"); done
  mkdir -p inputs/xrd
  hc_out=$(timeout -k 10 $((@TIMEOUT@ * ${#hc_src[@]})) xrdcp --nopbar --force --cksum adler32:print "${hc_src[@]}" \
           inputs/xrd/ 2>&1 < /dev/null)
  while read -r hc_k hc_s hc_p hc_n _; do  # "adler32: <hex, not zero-padded> <target> <bytes>"
    [ "$hc_k" = "adler32:" ] && [[ $hc_s =~ ^[0-9a-fA-F]{1,8}$ ]] && [[ $hc_n =~ ^[0-9]+$ ]] || continue
    hc_i=${hc_base[${hc_p##*/}]:-}
    [ -n "$hc_i" ] && [ $((16#$hc_s)) -eq $((16#${hc_in_sums[$hc_i]})) ] || continue
    hc_done[$hc_i]=$hc_n; hc_path[$hc_i]=inputs/xrd/${hc_p##*/}
  done <<< "$hc_out"
fi
for hc_i in "${!hc_in_urls[@]}"; do
  hc_u=${hc_in_urls[$hc_i]}; hc_d="inputs/${hc_in_names[$hc_i]}"; hc_want=${hc_in_sums[$hc_i]}; hc_ck=()
  if [ -n "${hc_done[$hc_i]:-}" ]; then  # fetched and verified by the xrdcp of all files (its size: xrdcp's)
    hc_in_bytes=$((hc_in_bytes + hc_done[$hc_i])); hc_in_files="$hc_in_files${hc_in_files:+ }$PWD/${hc_path[$hc_i]}"
    continue
  fi
  hc_b=${hc_u##*/}
  [ -n "$hc_b" ] && [ "${hc_base[$hc_b]:-}" = "$hc_i" ] && rm -f "inputs/xrd/$hc_b"  # what the one xrdcp left of it
  case "$hc_u" in
    # xrdcp checks the adler32 itself (end to end, as Rucio's downloads do): no second read of the file
    root://*) [ -n "$hc_want" ] && hc_ck=(--cksum "adler32:$hc_want") && hc_want=""
              hc_cmd=(xrdcp --nopbar --force "${hc_ck[@]}" "$hc_u" "$hc_d") ;;
    http://*|https://*) hc_cmd=(curl --fail --silent --show-error --location -o "$hc_d" "$hc_u") ;;
    davs://*) hc_cmd=(curl --fail --silent --show-error --location -o "$hc_d" "https://${hc_u#davs://}") ;;
    *) hc_cmd=(cp -- "$hc_u" "$hc_d") ;;
  esac
  if ! hc_out=$(timeout -k 10 @TIMEOUT@ "${hc_cmd[@]}" 2>&1 < /dev/null); then
    hc_why=$(printf '%s\n' "$hc_out" | grep -v '^[[:space:]]*$' | tail -n 1 | tr -d '\r' | cut -c1-300)
    [ -n "$hc_why" ] || hc_why="no answer within @TIMEOUT@ s"
    case "$hc_why" in  # xrdcp's words for a wrong checksum, in the words of the other tools
      *"CheckSum error"*) hc_why="adler32 mismatch: expected ${hc_ck[1]#adler32:} ($hc_why)" ;;
      *) hc_why="${hc_cmd[0]}: $hc_why" ;;
    esac
    printf 'stage-in failed: %s from %s: %s\n' "${hc_in_names[$hc_i]#*-}" "${hc_in_where[$hc_i]}" "$hc_why" > @ERROR@
    break
  fi
  if [ -n "$hc_want" ]; then
    hc_got=$(hc_adler32 "$hc_d" 2>&1)
    if [ "$hc_got" != "$hc_want" ]; then
      printf 'stage-in failed: %s from %s: adler32 mismatch: expected %s, got %s\n' "${hc_in_names[$hc_i]#*-}" \
        "${hc_in_where[$hc_i]}" "$hc_want" "$hc_got" > @ERROR@
      break
    fi
  fi
  hc_in_bytes=$((hc_in_bytes + $(stat -c %s "$hc_d")))
  hc_in_files="$hc_in_files${hc_in_files:+ }$PWD/$hc_d"
done
hc_now; hc_in_end=$hc_t
printf '{"files": %d, "bytes": %d, "start": %s, "end": %s, "access": "copy"}\n' "${#hc_in_urls[@]}" \
  "$hc_in_bytes" "$hc_in_start" "$hc_in_end" > @JSON@
export HC_INPUT_FILES="$hc_in_files"
[ -s @ERROR@ ] && hc_stagein_rc=@EXIT@
"""


def read_into(workdir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the stage-in's outcome (``stagein``, ``stagein_error``) when there was one."""
    try:
        result["stagein"] = json.loads((workdir / STAGEIN_JSON).read_text())
    except (OSError, ValueError):
        pass
    try:
        error = (workdir / STAGEIN_ERROR).read_text(errors="replace").strip()
    except OSError:
        error = ""
    if error:
        result["stagein_error"] = error[:1000]
    return result


def metrics(result: Mapping[str, Any] | None) -> dict[str, float]:
    """input_bytes, stagein_seconds and stagein_mb_per_s of a copy stage-in (MB = 10^6 bytes)."""
    info = (result or {}).get("stagein")
    if not isinstance(info, Mapping):
        return {}
    out = {"input_bytes": float(info.get("bytes") or 0)}
    try:
        seconds = float(info["end"]) - float(info["start"])
    except (KeyError, TypeError, ValueError):
        return out
    out["stagein_seconds"] = round(seconds, 6)
    if seconds > 0 and not (result or {}).get("stagein_error"):
        out["stagein_mb_per_s"] = round(out["input_bytes"] / seconds / 1e6, 6)
    return out

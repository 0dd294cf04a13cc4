"""A PanDA job's input data: the files in PanDA's own input fields, and the stage-in's numbers back.

* **Out**: every file the replica plan hands the job becomes an input
  ``FileSpec`` as PanDA's own workflows make them (``lfn``, ``scope``,
  ``GUID``, ``fsize``, ``checksum`` ``ad:<adler32>``, ``dataset`` and
  ``prodDBlock`` = the dataset's DID), so PanDA's monitor, its file
  tables and the pilot see what the job reads.  The files are at the
  queue's own storage already (Rucio said so), so they are ``ready`` with
  no dispatch block (``dispatchDBlock`` NULL): the server activates the
  job without asking its data management to move anything.  The job is
  ``transferType = direct``: the payload reads its inputs itself (the
  wrapper's stage-in fetches and verifies them, as on every backend, so the
  numbers compare), and a production pilot that honours direct access hands
  over the URLs instead of copying the files first.
* **Back**: the wrapper's stage-in and stage-out outcome stays on the
  pilot's node, so the wrapper also writes it into ``jobReport.json``, the
  file a PanDA pilot (pilot3 ``get_metadata``) sends with its final update
  as the job's metadata.  :func:`keep_report` writes it back into the
  job's work dir here, where :func:`hcflask.backends.jobscript.read_result`
  reads every backend's stage-in outcome.  The server keeps no metadata of
  a *failed* job (``addMetadata`` discards it), so a failed stage-in comes
  back as the payload's error instead: exit code 93 and the wrapper's
  ``stage-in failed: ...`` line, which it prints to stderr and the pilot
  reports as ``exeErrorDiag``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pandaclient.FileSpec import FileSpec

from hcflask.data.stagein import STAGEIN_ERROR, STAGEIN_EXIT, STAGEIN_JSON
from hcflask.data.stageout import STAGEOUT_ERROR, STAGEOUT_JSON

JOB_REPORT = "jobReport.json"
#: the key of hcflask's part in the job report (beside a payload's own report)
REPORT_KEY = "hammercloud"
#: the outcome files the report carries: (file, key, JSON or one line of text)
OUTCOME = ((STAGEIN_JSON, "stagein", True), (STAGEIN_ERROR, "stagein_error", False),
           (STAGEOUT_JSON, "stageout", True), (STAGEOUT_ERROR, "stageout_error", False))


def input_files(inputs: Sequence[Mapping[str, Any]] | None, dataset: str) -> list[Any]:
    """PanDA input FileSpecs for the job's Rucio files (none for plain files: no DID, no GUID)."""
    if not dataset:
        return []
    out = []
    for f in inputs or []:
        if not f.get("lfn") or not f.get("guid"):
            continue  # planned before the catalogue gave LFNs and GUIDs: the wrapper still reads it
        spec = FileSpec()
        spec.type, spec.status = "input", "ready"
        spec.lfn, spec.scope, spec.GUID = str(f["lfn"]), str(f.get("scope") or ""), str(f["guid"])
        spec.dataset = spec.prodDBlock = dataset
        spec.dispatchDBlock = "NULL"
        if f.get("bytes") is not None:
            spec.fsize = int(f["bytes"])
        if f.get("adler32"):
            spec.checksum = f"ad:{f['adler32']}"
        out.append(spec)
    return out


#: bash run last in a PanDA job's wrapper: the outcome files as one JSON object under REPORT_KEY,
#: merged into a job report the payload wrote itself (when python3 is there to merge it)
_REPORT = r"""hc_json_text() {  # file $1's first line as a JSON string
  printf '"%s"' "$(head -n 1 "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}
{
  printf '{"@KEY@": {'; hc_sep=""
  for hc_f in @FILES@; do
    [ -s "${hc_f%%:*}" ] || continue
    hc_k=${hc_f#*:}; printf '%s"%s": ' "$hc_sep" "${hc_k%:*}"; hc_sep=", "
    if [ "${hc_k##*:}" = json ]; then tr -d '\n' < "${hc_f%%:*}"; else hc_json_text "${hc_f%%:*}"; fi
  done
  printf '}}\n'
} > hc-report.json
if [ ! -s @REPORT@ ]; then mv -f hc-report.json @REPORT@
elif command -v python3 > /dev/null 2>&1; then
  python3 -c 'import json, sys
ours, theirs = (json.load(open(p)) for p in sys.argv[1:])
theirs.update(ours)
json.dump(theirs, open(sys.argv[2], "w"))' hc-report.json @REPORT@ && rm -f hc-report.json
fi
"""


def report_block() -> str:
    """The bash that leaves the stage-in and stage-out outcome in the pilot's job report."""
    files = " ".join(f"{name}:{key}:{'json' if is_json else 'text'}" for name, key, is_json in OUTCOME)
    return _REPORT.replace("@KEY@", REPORT_KEY).replace("@FILES@", files).replace("@REPORT@", JOB_REPORT)


def keep_report(workdir: Path, record: Any) -> bool:
    """Write the outcome files of the job report PanDA kept (the job's metadata) into ``workdir``.

    Returns whether there was one.  A report that is not ours (an ATLAS
    transform's) or not JSON is left alone: the job then has PanDA's
    verdict only.
    """
    raw = getattr(record, "metadata", None)
    try:
        report = raw if isinstance(raw, Mapping) else json.loads(str(raw or ""))
    except ValueError:
        report = None
    ours = report.get(REPORT_KEY) if isinstance(report, Mapping) else None
    if not isinstance(ours, Mapping):
        ours = _failed_stagein(record)
    if not ours:
        return False
    workdir.mkdir(parents=True, exist_ok=True)
    for name, key, is_json in OUTCOME:
        if key in ours:
            value = ours[key]
            (workdir / name).write_text(json.dumps(value) + "\n" if is_json else f"{value}\n")
    return True


def _failed_stagein(record: Any) -> dict[str, str]:
    """A failed stage-in's line from the payload error PanDA kept (no job report for failed jobs)."""
    diag = str(getattr(record, "exeErrorDiag", None) or "").strip()
    try:
        code = int(getattr(record, "transExitCode", None) or 0)
    except (TypeError, ValueError):
        code = 0
    if code == STAGEIN_EXIT and diag.startswith("stage-in failed:"):
        return {"stagein_error": diag}
    return {}

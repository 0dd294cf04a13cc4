"""A template as a file: the validated document with only what applies to it, in the schema's order.

The stored document is complete (every default filled in), which is what a
test snapshots and the engine reads.  A file is for people and for git:
``hc template export`` of what ``hc template import`` read must give back the
same document, so it leaves out what does not apply (``image`` and ``command``
beside a script, the top-level in-flight numbers of a stress test, whose ramp
says them) and keeps the order admins write them in (``kind`` near the top).
Importing the export again gives the same template (tests/cli/test_export.py).
"""
from __future__ import annotations

from typing import Any

from hcflask.models.spec import BLANK

#: the order of a template's fields in files, the API's schema and the docs
ORDER = ("name", "description", "kind", "queues", "lifetime", "jobs_in_flight", "max_jobs", "max_running",
         "autoexclusion", "renew", "stress", "workload", "inputs", "outputs")
WORKLOAD_ORDER = ("script", "image", "command", "resources", "success", "metrics")
#: what a stress test does not read (its ramp and stress.max_jobs say it; it never drives the robot)
NOT_FOR_STRESS = ("jobs_in_flight", "max_jobs", "max_running", "autoexclusion", "renew")


def export_document(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (validated) as a file shows it; :func:`validate_template` of the result gives ``doc`` back."""
    skip = set(NOT_FOR_STRESS) if doc.get("kind") == "stress" else {"stress"}
    out = {key: doc[key] for key in ORDER if key in doc and key not in skip}
    if "workload" in out:
        out["workload"] = _workload(out["workload"])
    return _without_empty(out)


def _without_empty(value: Any) -> Any:
    """No null, no empty text, list or table: the validator reads an absent key the same way
    (a null ``abort_fail_rate``, an empty ``must_match``, no ``description``)."""
    if isinstance(value, dict):
        kept = {key: _without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, "", [], {})}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


def _workload(workload: dict[str, Any]) -> dict[str, Any]:
    """A script, or an image and its command: the other two are left out."""
    out = {key: workload[key] for key in WORKLOAD_ORDER if key in workload}
    for key in ("script", "image", "command"):
        if isinstance(out.get(key), str) and not out[key].strip(BLANK):
            del out[key]
    return out

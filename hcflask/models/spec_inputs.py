"""The ``inputs`` section of a template (issue 22): the data every job reads.

Part of the one validator (:func:`hcflask.models.spec.validate_template`
calls :func:`check_inputs`), kept in its own module so spec.py stays one
concern per screen.  Either a Rucio dataset (``scope:name``; the engine asks
Rucio for its replicas at each queue's RSE) or a fixed list of ``files``
(URLs or absolute paths, for sites without Rucio).  docs/data.md explains
the fields.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hcflask.models.spec import Checker

INPUT_KEYS = {"dataset", "files", "files_per_job", "access", "protocols"}
ACCESS = ("copy", "direct")
#: schemes a job's wrapper can read (xrdcp, curl, cp); ``https``/``davs`` both go through curl
PROTOCOLS = ("root", "davs", "https", "http", "file")
DEFAULT_PROTOCOLS = ["root", "davs", "file"]
#: a Rucio DID: scope and name as Rucio's generic schema allows them
DID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,25}:[A-Za-z0-9_.\-/]{1,250}")
#: a plain input: a URL of a readable scheme, or an absolute path
FILE_RE = re.compile(r"(?:(?:root|https?|davs|file)://[^\s]+|/[^\s]*)")
MAX_FILES_PER_JOB = 1000
MAX_FILES = 10_000


def check_inputs(check: Checker, raw: Any) -> dict[str, Any] | None:
    """The normalised ``inputs`` section, or None when the template has none."""
    if raw is None:
        return None
    doc = check.mapping(raw, "inputs")
    check.unknown(doc, INPUT_KEYS, "inputs.")
    out: dict[str, Any] = {}
    if ("dataset" in doc) == ("files" in doc):
        check.add("inputs.dataset", "give a Rucio dataset (scope:name) or a list of files, exactly one of the two")
    elif "dataset" in doc:
        dataset = doc["dataset"]
        if not isinstance(dataset, str) or not DID_RE.fullmatch(dataset):
            check.add("inputs.dataset", f"must be a Rucio DID 'scope:name', got {dataset!r}")
        out["dataset"] = dataset
    else:
        out["files"] = _files(check, doc["files"])
    if doc.get("access", "copy") not in ACCESS:
        check.add("inputs.access", f"must be one of {', '.join(ACCESS)}, got {doc.get('access')!r}")
    out["access"] = doc.get("access", "copy")
    out["files_per_job"] = _files_per_job(check, doc.get("files_per_job", 1))
    out["protocols"] = _protocols(check, doc.get("protocols", DEFAULT_PROTOCOLS))
    return out


def _files(check: Checker, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_FILES:
        check.add("inputs.files", f"must be a list of 1 to {MAX_FILES} URLs or absolute paths")
        return []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not FILE_RE.fullmatch(item):
            check.add(f"inputs.files[{i}]",
                      f"not a root://, http(s)://, davs://, file:// URL or absolute path: {item!r}")
    return [str(item) for item in value]


def _files_per_job(check: Checker, value: Any) -> int:
    from hcflask.models.spec import as_whole

    number = as_whole(value)
    if number is None or not 1 <= number <= MAX_FILES_PER_JOB:
        check.add("inputs.files_per_job", f"must be a whole number from 1 to {MAX_FILES_PER_JOB}, got {value!r}")
        return 1
    return number


def _protocols(check: Checker, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        check.add("inputs.protocols", f"must be a non-empty list of: {', '.join(PROTOCOLS)}")
        return list(DEFAULT_PROTOCOLS)
    for i, item in enumerate(value):
        if item not in PROTOCOLS:
            check.add(f"inputs.protocols[{i}]", f"unknown protocol {item!r} (known: {', '.join(PROTOCOLS)})")
    if len(set(map(str, value))) != len(value):
        check.add("inputs.protocols", "lists a protocol twice")
    return [str(item) for item in value]


def inputs_schema() -> dict[str, Any]:
    """The JSON schema of the section, for the OpenAPI document (same boundaries as above)."""
    return {
        "type": "object", "additionalProperties": False,
        "description": "input data: a Rucio dataset or plain files (docs/data.md)",
        "properties": {
            "dataset": {"type": "string", "pattern": f"^{DID_RE.pattern}$"},
            "files": {"type": "array", "minItems": 1, "maxItems": MAX_FILES,
                      "items": {"type": "string", "pattern": f"^{FILE_RE.pattern}$"}},
            "files_per_job": {"type": "integer", "minimum": 1, "maximum": MAX_FILES_PER_JOB, "default": 1},
            "access": {"type": "string", "enum": list(ACCESS), "default": "copy"},
            "protocols": {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"type": "string", "enum": list(PROTOCOLS)}, "default": DEFAULT_PROTOCOLS},
        },
        "oneOf": [{"required": ["dataset"], "not": {"required": ["files"]}},
                  {"required": ["files"], "not": {"required": ["dataset"]}}],
    }

"""The ``inputs`` and ``outputs`` sections of a template (issue 22): the data every job
reads, and the small file every job writes back to an RSE (optional stage-out).

Part of the one validator (:func:`hcflask.models.spec.validate_template`
calls :func:`check_inputs`), kept in its own module so spec.py stays one
concern per screen.  Either a Rucio dataset (``scope:name``; the engine asks
Rucio for its replicas at each queue's RSE) or a fixed list of ``files``
(URLs or absolute paths, for sites without Rucio).  ``outputs`` names the
RSE a job's output file is uploaded to and the lifetime of its rule, so test
outputs expire instead of filling the storage.  docs/data.md explains the
fields.
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
#: an adler32 as Rucio writes it: 8 hex digits
ADLER32_RE = re.compile(r"[0-9A-Fa-f]{8}")
FILE_KEYS = {"url", "adler32"}
MAX_FILES_PER_JOB = 1000
MAX_FILES = 10_000

OUTPUT_KEYS = {"rse", "lifetime", "scope"}
#: an RSE name as Rucio's generic schema allows it (upload goes to one RSE, not an expression)
RSE_RE = re.compile(r"[A-Z0-9]+(?:[_-][A-Z0-9]+)*")
SCOPE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,25}")
DEFAULT_LIFETIME = 3600
#: seconds a stage-out rule may live at most (test outputs are meant to expire)
MAX_LIFETIME = 30 * 86400


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


def _files(check: Checker, value: Any) -> list[str | dict[str, str]]:
    """URLs or paths; an entry may be ``{url, adler32}`` so that the wrapper verifies it as a Rucio file."""
    if not isinstance(value, list) or not value or len(value) > MAX_FILES:
        check.add("inputs.files", f"must be a list of 1 to {MAX_FILES} URLs or absolute paths")
        return []
    out: list[str | dict[str, str]] = []
    for i, item in enumerate(value):
        field = f"inputs.files[{i}]"
        entry = check.mapping(item, field) if isinstance(item, dict) else {"url": item}
        check.unknown(entry, FILE_KEYS, f"{field}.")
        url = entry.get("url")
        if not isinstance(url, str) or not FILE_RE.fullmatch(url):
            check.add(f"{field}.url" if isinstance(item, dict) else field,
                      f"not a root://, http(s)://, davs://, file:// URL or absolute path: {url!r}")
        adler32 = entry.get("adler32")
        if adler32 is not None and not (isinstance(adler32, str) and ADLER32_RE.fullmatch(adler32)):
            check.add(f"{field}.adler32", f"must be the file's adler32 as 8 hex digits, got {adler32!r}")
        # without a checksum an entry stays a plain string, as before
        out.append({"url": str(url), "adler32": str(adler32).lower()} if adler32 else str(url))
    return out


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


def check_outputs(check: Checker, raw: Any) -> dict[str, Any] | None:
    """The normalised ``outputs`` section, or None when the jobs write nothing back."""
    if raw is None:
        return None
    from hcflask.models.spec import as_whole

    doc = check.mapping(raw, "outputs")
    check.unknown(doc, OUTPUT_KEYS, "outputs.")
    rse = doc.get("rse")
    if not isinstance(rse, str) or len(rse) > 100 or not RSE_RE.fullmatch(rse):
        check.add("outputs.rse", f"required: an RSE name such as SITE-A_SCRATCHDISK (capitals, digits, - and _), "
                                 f"got {rse!r}")
    lifetime = as_whole(doc.get("lifetime", DEFAULT_LIFETIME))
    if lifetime is None or not 60 <= lifetime <= MAX_LIFETIME:
        check.add("outputs.lifetime", f"must be whole seconds from 60 to {MAX_LIFETIME}, got {doc.get('lifetime')!r}")
    out: dict[str, Any] = {"rse": rse, "lifetime": lifetime or DEFAULT_LIFETIME}
    if "scope" in doc:
        if not isinstance(doc["scope"], str) or not SCOPE_RE.fullmatch(doc["scope"]):
            check.add("outputs.scope", f"must be a Rucio scope (letters, digits, _ . -, at most 25), "
                                       f"got {doc['scope']!r}")
        out["scope"] = doc["scope"]
    return out


def outputs_schema() -> dict[str, Any]:
    """The JSON schema of ``outputs`` (same boundaries as :func:`check_outputs`)."""
    return {
        "type": "object", "additionalProperties": False, "required": ["rse"],
        "description": "stage-out: a small file per job uploaded to this RSE with a rule that expires "
                       "(docs/data.md)",
        "properties": {
            "rse": {"type": "string", "maxLength": 100, "pattern": f"^{RSE_RE.pattern}$"},
            "lifetime": {"type": "integer", "minimum": 60, "maximum": MAX_LIFETIME, "default": DEFAULT_LIFETIME},
            "scope": {"type": "string", "pattern": f"^{SCOPE_RE.pattern}$"},
        },
    }


def inputs_schema() -> dict[str, Any]:
    """The JSON schema of the section, for the OpenAPI document (same boundaries as above)."""
    return {
        "type": "object", "additionalProperties": False,
        "description": "input data: a Rucio dataset or plain files (docs/data.md)",
        "properties": {
            "dataset": {"type": "string", "pattern": f"^{DID_RE.pattern}$"},
            "files": {"type": "array", "minItems": 1, "maxItems": MAX_FILES, "items": {"oneOf": [
                {"type": "string", "pattern": f"^{FILE_RE.pattern}$"},
                {"type": "object", "additionalProperties": False, "required": ["url"],
                 "description": "a file and its adler32, which the stage-in verifies",
                 "properties": {"url": {"type": "string", "pattern": f"^{FILE_RE.pattern}$"},
                                "adler32": {"type": "string", "pattern": f"^{ADLER32_RE.pattern}$"}}}]}},
            "files_per_job": {"type": "integer", "minimum": 1, "maximum": MAX_FILES_PER_JOB, "default": 1},
            "access": {"type": "string", "enum": list(ACCESS), "default": "copy"},
            "protocols": {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"type": "string", "enum": list(PROTOCOLS)}, "default": DEFAULT_PROTOCOLS},
        },
        "oneOf": [{"required": ["dataset"], "not": {"required": ["files"]}},
                  {"required": ["files"], "not": {"required": ["dataset"]}}],
    }

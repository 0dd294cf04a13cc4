"""Failure signatures: one string per *cause* of a failure, whatever its variable parts.

The robot groups failing queues by what broke them, and the text of a failure
varies from job to job even when the cause is the same: the node
(``wn0412.site``), an address, a time, a pid, a job id, a scratch path, a size.
Grouped by exact text, an outage whose every job prints its own node name
looks like twenty independent failures, and the outage guard never fires.

A signature is the failure reason with its variable parts replaced by
placeholders (``<host>``, ``<ip>``, ``<time>``, ``<n>`` ...), so
``exit 3: cannot open /cvmfs/atlas.cern.ch on wn0412 after 31 s`` and
``exit 3: cannot open /cvmfs/atlas.cern.ch on wn0977 after 12 s`` are one
signature.  Numbers that name the cause stay: the exit code, a signal, an
errno, an HTTP status and bracketed error codes (``[3011]``).

Why a deterministic normaliser and not a streaming template miner (drain3):
the signature is stored on the job when it is judged and must be the same
in every process and in the replay, whatever else each process has seen.  A
miner's templates depend on the order of the lines it was fed.  The token
classes below were measured against drain3 on the same corpus
(``bench/bench_signatures.py``: 60 causes x 1,000 variants; one signature
per cause, no two causes merged, about 20 µs a job).
"""
from __future__ import annotations

import re

#: the longest signature kept (the rollup's key column is 200 characters)
LIMIT = 200

_KEEP_NUMBER = re.compile(
    r"(?i)\b(exit(?:\s+code)?|signal|sig|errno|http|status|code|rc)(\s*[:=]?\s*)(\d{1,5})\b|(?<!\w)\[(\d{1,5})\]")
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\",;()<>\]]+")
_UUID = re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_DATETIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
    r"|(?i:\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?"
    r"(?i:\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b)"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b")
#: full (seven colons) or compressed (``::``) forms only: ``12:34:56`` is a time, not an address
_IPV6 = re.compile(r"(?i)(?<![\w:])\[?(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|(?:[0-9a-f]{1,4}:){1,6}:"
                   r"(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?)\]?(?::\d+)?(?![\w:])")
_HEX = re.compile(r"(?i)\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b")
_PATH = re.compile(r"(?<![\w.<>])(?:~|\.{1,2})?/[^\s'\",;:()<>\[\]]*")
#: dotted names with a digit and a letter somewhere (wn0412.site, 12345.batch): nodes, files, steps
_HOST = re.compile(r"(?i)(?<![\w<])(?=[\w.-]*\d)(?=[\w.-]*[a-z])[a-z0-9_-]+(?:\.[a-z0-9_-]+)+(?![\w>])")
_NUMBER = re.compile(r"(?i)(?<![\w<-])[-+]?\d+(?:[.,]\d+)?(?:e[-+]?\d+)?(?:\s?(?:[kmgtp]i?b|bytes?|b|ms|us|µs|ns|"
                     r"s|sec|secs|seconds?|min|mins|minutes?|h|hours?|%))?(?![\w>])")
_ID = re.compile(r"(?i)(?<![<\w])(?=[a-z_-]*\d)(?=[0-9_-]*[a-z])[a-z0-9_-]+(?![\w>])")
_REPEAT = re.compile(r"(<\w+>)(?:[\s:,=_./-]*\1)+")
_SPACE = re.compile(r"\s+")
#: kept numbers stand in the text as private-use characters while the patterns run
_KEPT = 0xE000


def _path(match: re.Match[str]) -> str:
    """Keep the parts of a path that name a place (``/cvmfs/atlas.cern.ch``), blank those with digits."""
    parts = match.group(0).split("/")
    return "/".join("<n>" if any(c.isdigit() for c in p) else p for p in parts)


def signature(reason: str, queue: str | None = None) -> str:
    """The cause of a failure without its variable parts (see the module docstring); '' for no reason."""
    text = reason.strip()
    if not text:
        return ""
    if queue:
        text = text.replace(queue, "<queue>")
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return chr(_KEPT + len(kept) - 1)  # a private-use character: no pattern below matches it

    text = _KEEP_NUMBER.sub(keep, text)
    for pattern, token in ((_URL, "<url>"), (_UUID, "<uuid>"), (_IPV6, "<ip>"), (_IPV4, "<ip>"),
                           (_DATETIME, "<time>"), (_HEX, "<hex>")):
        text = pattern.sub(token, text)
    text = _PATH.sub(_path, text)
    for pattern, token in ((_HOST, "<id>"), (_NUMBER, "<n>"), (_ID, "<id>")):
        text = pattern.sub(token, text)
    text = _REPEAT.sub(r"\1", text)
    text = "".join(kept[ord(c) - _KEPT] if _KEPT <= ord(c) < _KEPT + len(kept) else c for c in text)
    return _SPACE.sub(" ", text).strip()[:LIMIT]


def of_claim(failure: str) -> str:
    """A robot claim's failure as a signature: claims made before signatures existed hold the
    reason with ``<queue>`` in it, and :func:`signature` of a signature is itself."""
    return signature(failure)

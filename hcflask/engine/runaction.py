"""Running one robot action, and what readers may see of it.

The outbox (:mod:`hcflask.engine.notify`) decides when an action runs;
this module runs it once: a command through the one command seam (an
argument list, no shell, killed at its timeout), a webhook as one POST
(retries are the outbox's business).  What is shown or stored about an
action never holds its secrets: a webhook appears as its scheme and host, a
command by its ``name`` (default: the base name of its program), and outcome
texts are scrubbed of the URL, the header values and the arguments
(:func:`shown`, :func:`scrub`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hcflask.backends import BackendUnavailable
from hcflask.backends.runner import run

HIDDEN = "…"


def shown(entry: Mapping[str, Any]) -> str:
    """How an action appears to readers: a webhook as scheme://host, a command by its name."""
    if entry.get("name"):
        return str(entry["name"])
    if entry.get("type") == "webhook":
        try:
            url = urlsplit(str(entry.get("url", "")))
            return f"{url.scheme}://{url.hostname or '?'}" + (f":{url.port}" if url.port else "")
        except ValueError:
            return "webhook"
    if entry.get("type") == "command":
        return os.path.basename(str((entry.get("argv") or ["command"])[0])) or "command"
    return str(entry.get("type", "action"))


def scrub(text: str, entry: Mapping[str, Any], argv: list[str] | None = None) -> str:
    """``text`` without the action's URL (path, query, credentials), header values or arguments."""
    secrets = []
    if entry.get("url"):
        url = str(entry["url"])
        split = urlsplit(url)
        secrets += [url, split.path + (f"?{split.query}" if split.query else ""), split.path, split.query,
                    split.netloc if split.username else ""]
    secrets += [str(v) for v in (entry.get("headers") or {}).values()]
    secrets += [str(a) for a in [*(argv or entry.get("argv") or []), *(entry.get("undo") or [])]]
    for secret in sorted({s for s in secrets if len(s) > 1}, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


def _fill(text: str, data: Mapping[str, Any]) -> str:
    values = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in data.items()}
    return text.format_map(values)


def run_action(config: Mapping[str, Any], entry: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[bool, str]:
    """Run ``entry`` once with the event's fields ``data``: (worked, what happened, scrubbed)."""
    timeout = float(entry.get("timeout", config.get("action_timeout", 10.0)))
    if entry["type"] == "record":
        return True, "recorded"
    if entry["type"] == "command":
        argv = [_fill(a, data) for a in entry["argv"]]
        try:
            done = run(argv, timeout=timeout)
        except BackendUnavailable as exc:
            return False, scrub(f"{shown(entry)}: {exc}", entry, argv)
        detail = scrub((done.stderr or done.stdout).strip()[-500:], entry, argv)
        return done.returncode == 0, f"exit {done.returncode}: {shown(entry)}" + (f": {detail}" if detail else "")
    return _post(entry, data, timeout)


def _post(entry: Mapping[str, Any], data: Mapping[str, Any], timeout: float) -> tuple[bool, str]:
    """One POST; retries are the outbox's business.  The message names the host only."""
    import requests  # here: every hc command checks [robot] actions through this module, few post

    url = str(entry["url"])
    host = shown(entry)
    headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
    headers["X-HC-Delivery"] = str(data.get("delivery", ""))
    try:
        # streamed, and at most 4 KB of the body read: a chatty receiver cannot outlast the claim
        with requests.post(url, json=dict(data), timeout=timeout, headers=headers, stream=True) as response:
            status = response.status_code
            body = b"" if 200 <= status < 300 else next(response.iter_content(4096), b"")
    except requests.Timeout:
        return False, f"POST to {host}: no answer within {timeout:g} s"
    except requests.RequestException as exc:
        return False, f"POST to {host}: {type(exc).__name__}"
    if 200 <= status < 300:
        return True, f"POST to {host}: {status}"
    return False, f"POST to {host}: HTTP {status}: {body.decode(errors='replace')[:200]}"

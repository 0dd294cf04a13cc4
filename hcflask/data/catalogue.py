"""The data catalogue: a dataset's replicas at an RSE, from Rucio (``rucio-clients``).

Two kinds of trouble are told apart, because they mean different things to
a site admin:

* :class:`CatalogueUnavailable` -- Rucio cannot be reached or fails: an
  outage of the catalogue.  Submission waits, nothing is failed.
* :class:`NoReplicas` -- Rucio answered, and this queue cannot be served
  (no replica at its RSE, an unknown RSE expression or dataset): a
  configuration problem of the test, never a failure of the queue.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: characters kept in a local file name (the rest become '_')
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+\-]")


#: this process's Rucio clients, by settings: one login, then its token, kept in memory
_CLIENTS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


class CatalogueUnavailable(Exception):
    """Rucio did not answer (or failed): a data-catalogue outage."""


class NoReplicas(Exception):
    """Rucio answered: this queue has nothing to read (the message says why)."""


def local_name(name: str) -> str:
    """A file name safe in the job's scratch (Rucio names may hold '/')."""
    return _UNSAFE.sub("_", name.rsplit("/", 1)[-1]) or "input"


def storage_of(url: str) -> str:
    """host:port of a URL ('' for a local path): the storage a failure names."""
    parsed = urlparse(url)
    return parsed.netloc if parsed.scheme not in ("", "file") else ""


def _pick(pfns: Mapping[str, Mapping[str, Any]], protocols: Sequence[str]) -> tuple[str, str] | None:
    """The PFN of the most wanted protocol: (url, rse)."""
    ranked = sorted(pfns.items(), key=lambda item: protocols.index(urlparse(item[0]).scheme)
                    if urlparse(item[0]).scheme in protocols else len(protocols))
    for url, info in ranked:
        if urlparse(url).scheme in protocols:
            return url, str(info.get("rse", ""))
    return None


def plain_files(files: Sequence[str | Mapping[str, str]]) -> list[dict[str, Any]]:
    """Inputs given as URLs or paths (no Rucio): size unknown, adler32 when the template gave one."""
    out = []
    for entry in files:
        url = entry if isinstance(entry, str) else str(entry["url"])
        path = urlparse(url).path if url.startswith("file://") else url
        out.append({"name": local_name(Path(urlparse(path).path).name or path), "url": path,
                    "adler32": "" if isinstance(entry, str) else str(entry.get("adler32") or ""),
                    "bytes": None, "rse": storage_of(path) or "local"})
    return out


def client(config: Mapping[str, Any]) -> Any:
    """This process's Rucio client for ``[rucio]`` in hc.toml (no rucio.cfg needed).

    Made once per process and settings, not per lookup: a new client logs in
    again whenever its token file (shared by every Rucio client of this user
    and account on the host, and removed by tmp cleaners) is missing or holds
    another identity's token.  The kept client renews its token itself when
    Rucio answers 401 (expiry).
    """
    password = str(config.get("RUCIO_PASSWORD") or "")
    if config.get("RUCIO_PASSWORD_FILE"):
        password = Path(str(config["RUCIO_PASSWORD_FILE"])).read_text().strip()
    host = str(config.get("RUCIO_HOST") or "")
    settings = (os.getpid(), host, str(config.get("RUCIO_AUTH_HOST") or host),
                str(config.get("RUCIO_ACCOUNT") or "root"), str(config.get("RUCIO_USERNAME") or ""), password,
                float(config.get("RUCIO_TIMEOUT") or 30))
    with _LOCK:
        if settings not in _CLIENTS:
            _CLIENTS[settings] = _login(*settings[1:])
        return _CLIENTS[settings]


def forget() -> None:
    """Drop this process's clients (the next lookup logs in again): after a refused login, and in tests."""
    with _LOCK:
        _CLIENTS.clear()


def _login(host: str, auth_host: str, account: str, username: str, password: str, timeout: float) -> Any:
    from rucio.client import Client
    from rucio.common.exception import RucioException

    try:
        return Client(rucio_host=host, auth_host=auth_host, account=account, auth_type="userpass",
                      creds={"username": username, "password": password}, timeout=timeout, user_agent="hcflask",
                      # our log, not the client's own coloured handler (an outage is also one alert)
                      logger=logging.getLogger("hcflask.rucio"))
    except RucioException as exc:
        raise CatalogueUnavailable(f"Rucio at {host}: {_text(exc)}") from exc


def replicas(rucio: Any, dataset: str, rse: str, protocols: Sequence[str]) -> list[dict[str, Any]]:
    """The dataset's files that have a replica at ``rse``, sorted by name, one URL each.

    Raises :class:`NoReplicas` when none is there, :class:`CatalogueUnavailable` when Rucio fails.
    """
    from rucio.common.exception import (
        CannotAuthenticate,
        DataIdentifierNotFound,
        InvalidRSEExpression,
        RSENotFound,
        RucioException,
    )

    scope, _, name = dataset.partition(":")
    try:
        found = list(rucio.list_replicas([{"scope": scope, "name": name}], rse_expression=rse,
                                         schemes=list(protocols)))
    except DataIdentifierNotFound as exc:
        raise NoReplicas(f"dataset {dataset} not found in Rucio") from exc
    except (InvalidRSEExpression, RSENotFound) as exc:
        raise NoReplicas(f"RSE expression {rse!r} matches no RSE: {_text(exc)}") from exc
    except CannotAuthenticate as exc:
        forget()  # a changed password or account: log in afresh next time
        raise CatalogueUnavailable(f"Rucio list_replicas: {_text(exc)}") from exc
    except (RucioException, OSError) as exc:
        raise CatalogueUnavailable(f"Rucio list_replicas: {_text(exc)}") from exc
    guids = _guids(rucio, scope, name)
    files = []
    for replica in found:
        chosen = _pick(replica.get("pfns") or {}, list(protocols))
        if chosen is None:
            continue
        url, at = chosen
        if url.startswith("file://"):
            url = urlparse(url).path
        files.append({"name": local_name(str(replica["name"])), "url": url,
                      "adler32": str(replica.get("adler32") or "").lower(), "bytes": replica.get("bytes"),
                      "rse": at, "scope": str(replica["scope"]), "lfn": str(replica["name"]),
                      "guid": guids.get((str(replica["scope"]), str(replica["name"])), "")})
    if not files:
        raise NoReplicas(f"dataset {dataset} has no replica there readable by {', '.join(protocols)}")
    return sorted(files, key=lambda f: (f["name"], f["url"]))


def _guids(rucio: Any, scope: str, name: str) -> dict[tuple[str, str], str]:
    """Each file's GUID, by (scope, name): PanDA identifies input files by it (``list_replicas`` has none).

    A catalogue that cannot say is an outage like a failed ``list_replicas``.
    """
    from rucio.common.exception import RucioException

    try:
        return {(str(f["scope"]), str(f["name"])): _guid(f.get("guid")) for f in rucio.list_files(scope, name)}
    except (RucioException, OSError) as exc:
        raise CatalogueUnavailable(f"Rucio list_files: {_text(exc)}") from exc


def _guid(value: Any) -> str:
    """Rucio's GUID in PanDA's form (8-4-4-4-12 upper-case hex digits, as ATLAS writes them)."""
    text = str(value or "").replace("-", "").upper()
    if len(text) != 32:
        return ""
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__

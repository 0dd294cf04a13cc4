"""Create ``panda`` queues from a CRIC-style export (``hc queue import-cric FILE``).

A grid site keeps its PanDA queues in CRIC; its JSON export maps a queue
name to its attributes (``panda_resource``, ``status``, ``state``, ``type``,
``corecount``, ``cloud``, ``atlas_site`` ...).  Loading it creates one
hcflask queue per PanDA queue in one step, with the server and credential
options the site gives once for all of them.  Queues that exist already are
left alone (their status is an admin's or the robot's decision).

CRIC status -> hcflask status: ``online`` -> online, ``test`` -> test,
anything else (``offline``, ``brokeroff``, ``paused`` ...) -> offline.
Queues whose ``state`` is not ``ACTIVE`` are skipped unless asked for.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcflask.states import QueueStatus

STATUS = {"online": QueueStatus.ONLINE, "test": QueueStatus.TEST}


def queues_from_cric(
    data: Mapping[str, Any] | list[Any],
    options: Mapping[str, str] | None = None,
    include_inactive: bool = False,
    types: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Queue definitions (name, status, options, description) from a CRIC export."""
    if isinstance(data, Mapping):
        entries = [(str(name), attrs) for name, attrs in data.items()]
    else:
        entries = [(str(attrs.get("name", "")), attrs) for attrs in data if isinstance(attrs, Mapping)]
    wanted = {t.lower() for t in types}
    queues = []
    for name, attrs in entries:
        if not isinstance(attrs, Mapping):
            raise ValueError(f"queue {name!r}: expected an object of attributes")
        name = str(attrs.get("panda_resource") or attrs.get("name") or name)
        if not name:
            raise ValueError("a queue without a name")
        if not include_inactive and str(attrs.get("state", "ACTIVE")).upper() != "ACTIVE":
            continue
        kind = str(attrs.get("type") or "")
        if wanted and kind.lower() not in wanted:
            continue
        site = attrs.get("atlas_site") or attrs.get("rc_site") or attrs.get("site") or ""
        details = [kind, f"{attrs['corecount']} cores" if attrs.get("corecount") else "",
                   f"cloud {attrs['cloud']}" if attrs.get("cloud") else ""]
        description = f"PanDA queue at {site}" if site else "PanDA queue"
        if any(details):
            description += f" ({', '.join(d for d in details if d)})"
        queues.append({
            "name": name,
            "status": STATUS.get(str(attrs.get("status", "online")).lower(), QueueStatus.OFFLINE),
            "options": {**(options or {}), "site": name, **_rse(attrs)},
            "description": description,
        })
    return queues


def import_cric(
    path: Path,
    options: Mapping[str, str] | None = None,
    include_inactive: bool = False,
    types: Iterable[str] = (),
) -> list[str]:
    """Create the queues of a CRIC export file; one line per queue saying what happened.

    Runs inside an app context.  Options are validated per queue before any
    is created, so a bad option creates nothing.
    """
    from hcflask.engine import actions, status
    from hcflask.extensions import db
    from hcflask.models import Queue, ValidationError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError("file", f"cannot read {path}: {exc}") from None
    try:
        queues = queues_from_cric(data, options, include_inactive, types)
    except ValueError as exc:
        raise ValidationError("file", str(exc)) from None
    for queue in queues:
        actions.validate_queue_options("panda", queue["options"])
    existing = set(db.session.scalars(select(Queue.name)))
    lines = []
    for queue in queues:
        if queue["name"] in existing:
            lines.append(f"{queue['name']}: exists, left alone")
            continue
        created = actions.create_queue(queue["name"], "panda", queue["options"], queue["description"])
        if queue["status"] is not QueueStatus.ONLINE:
            status.admin_set(created, queue["status"].value, actor="import-cric", reason="status in CRIC")
        lines.append(f"{queue['name']}: created ({queue['status'].value})")
    return lines


def _rse(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The queue's input storage as an RSE expression (the ``rse`` option; docs/data.md).

    CRIC's ``astorages.read_lan`` (the RSEs the queue reads from), else the
    older ``ddm``/``ddmendpoint`` list; several become a union ``A|B``.
    """
    storages = attrs.get("astorages")
    names: list[str] = []
    if isinstance(storages, Mapping) and isinstance(storages.get("read_lan"), list):
        names = [str(n) for n in storages["read_lan"] if n]
    if not names:
        legacy = attrs.get("ddmendpoint") or attrs.get("ddm") or ""
        names = [n.strip() for n in str(legacy).split(",") if n.strip()] if isinstance(legacy, str) else []
    return {"rse": "|".join(dict.fromkeys(names))} if names else {}

"""``hc queue``: where test jobs run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from hcflask.access.accounts import cli_actor
from hcflask.cli.common import confirm, get_row, initialised, table, yes_option
from hcflask.extensions import db
from hcflask.models import Queue, ValidationError, messages
from hcflask.models.names import shown
from hcflask.models.spec import from_text
from hcflask.states import QueueStatus


@click.group("queue")
def queue_group() -> None:
    """Queues: where test jobs run."""


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a command line has only text, so a value written as a whole number
    (``4``, ``-1``) is a number, checked by the backend as the API and the form check it."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError("options", messages.options_shape(pair))
        if key == "extra_args":
            options.setdefault(key, []).append(value)
        else:
            options[key] = from_text(value)
    return options


@queue_group.command("add")
@click.argument("name")
@click.option("--backend", required=True, help="local, slurm or panda")
@click.option("--option", "-o", "pairs", multiple=True, help="backend option KEY=VALUE (repeatable)")
@click.option("--description", default="")
@click.option("--no-autoexclusion", is_flag=True, help="the robot never excludes this queue")
@initialised
def queue_add(name: str, backend: str, pairs: tuple[str, ...], description: str, no_autoexclusion: bool) -> None:
    """Create a queue (backend options are checked now, not at first submit)."""
    from hcflask.engine.actions import create_queue

    queue = create_queue(name, backend, _options(pairs), description, autoexclusion=not no_autoexclusion)
    click.echo(f"queue {queue.name} ({queue.backend}) created")


@queue_group.command("import-cric")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--option", "-o", "pairs", multiple=True, help="option for every queue, e.g. server=..., proxy=...")
@click.option("--type", "types", multiple=True, help="only these CRIC types (unified, analysis, production ...)")
@click.option("--include-inactive", is_flag=True, help="also queues whose CRIC state is not ACTIVE")
@initialised
def queue_import_cric(file: Path, pairs: tuple[str, ...], types: tuple[str, ...], include_inactive: bool) -> None:
    """Create panda queues from a CRIC-style JSON export (queue name → attributes)."""
    from hcflask.backends.panda_cric import import_cric

    for line in import_cric(file, _options(pairs), include_inactive=include_inactive, types=types):
        click.echo(line)


@queue_group.command("discover")
@click.argument("backend")
@click.option("--add", "names", multiple=True, help="create a queue for this partition/queue (repeatable)")
@click.option("--all", "add_all", is_flag=True, help="create queues for all that do not exist yet")
@click.option("--prefix", default="", help="queue name = PREFIX + the batch system's name")
@initialised
def queue_discover(backend: str, names: tuple[str, ...], add_all: bool, prefix: str) -> None:
    """List what BACKEND offers (e.g. slurm: the partitions sinfo reports) and create queues for some."""
    from hcflask.engine.actions import discover_queues

    offered = discover_queues(backend)
    existing = set(db.session.scalars(select(Queue.name)))
    rows = [(o["name"], _duration(o.get("time_limit")), o.get("nodes", ""),
             "up" if o.get("available", True) else "down", "yes" if o.get("default") else "",
             "exists" if prefix + o["name"] in existing else "") for o in offered]
    table(rows, ("name", "time limit", "nodes", "state", "default", "queue"))
    known = {o["name"]: o for o in offered}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError("add", f"{backend} offers no {unknown[0]!r} (offered: {', '.join(known)})")
    record_cpus(offered, prefix)
    chosen = list(known) if add_all else list(names)
    for name in chosen:
        if prefix + name in existing:
            continue
        queue = create_discovered(backend, known[name], prefix)
        click.echo(f"queue {queue.name} ({backend}) created: {queue.description}")


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int):
        return "unlimited"
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def create_discovered(backend: str, offered: dict[str, Any], prefix: str) -> Queue:
    from hcflask.engine.actions import create_queue

    limit = f"time limit {_duration(offered.get('time_limit'))}"
    description = f"{backend} {offered['name']} ({limit}, {offered.get('nodes', '?')} nodes)"
    queue = create_queue(prefix + offered["name"], backend, offered["options"], description)
    queue.cpus = offered.get("cpus") or None
    db.session.commit()
    return queue


def record_cpus(offered: list[dict[str, Any]], prefix: str) -> None:
    """Keep each known queue's partition CPUs up to date (the cost of testing is shown as a share of them)."""
    cpus = {prefix + o["name"]: o.get("cpus") for o in offered if o.get("cpus")}
    for queue in db.session.scalars(select(Queue).where(Queue.name.in_(list(cpus)))):
        queue.cpus = cpus[queue.name]
    db.session.commit()


@queue_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in QueueStatus]), help="only queues in this status")
@initialised
def queue_list(status: str | None) -> None:
    """List queues with their status and backend."""
    query = Queue.live().order_by(Queue.name)
    if status:
        query = query.where(Queue.status == status)
    rows = [(q.name, q.backend, q.status, "yes" if q.autoexclusion else "no",
             " ".join(f"{k}={v}" for k, v in sorted((q.options or {}).items())))
            for q in db.session.scalars(query)]
    table(rows, ("name", "backend", "status", "autoexcl", "options"))


@queue_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print it as JSON")
@initialised
def queue_show(name: str, as_json: bool) -> None:
    """Describe a queue: status and its claims, options, tests on it, recent jobs and events, the robot's view."""
    import json

    from hcflask.cli.describe import queue_facts, queue_lines

    facts = queue_facts(get_row(Queue, "name", name, "queue"))
    click.echo(json.dumps(facts, indent=2) if as_json else "\n".join(queue_lines(facts)))


@queue_group.command("edit")
@click.argument("name")
@click.option("--option", "-o", "pairs", multiple=True,
              help="backend option KEY=VALUE (repeatable; replaces the options when given)")
@click.option("--unset", "unset", multiple=True, help="drop this backend option (repeatable)")
@click.option("--description")
@click.option("--autoexclusion/--no-autoexclusion", default=None, help="may the robot exclude it")
@initialised
def queue_edit(name: str, pairs: tuple[str, ...], unset: tuple[str, ...], description: str | None,
               autoexclusion: bool | None) -> None:
    """Change a queue's backend options, description or auto-exclusion opt-out."""
    from hcflask.engine.actions import update_queue

    queue = _live(name)
    options = {**(queue.options or {}), **_options(pairs)}
    for key in unset:
        options.pop(key, None)
    update_queue(queue, options, queue.description if description is None else description,
                 queue.autoexclusion if autoexclusion is None else autoexclusion)
    click.echo(f"queue {name} saved")


@queue_group.command("remove")
@click.argument("name")
@yes_option
@initialised
def queue_remove(name: str, yes: bool) -> None:
    """Delete a queue; its job history stays (refused while jobs are in flight)."""
    from hcflask.engine.actions import delete_queue

    queue = _live(name)
    confirm(yes, f"delete queue {name}? its job history stays")
    click.echo(delete_queue(queue, cli_actor()))


@queue_group.command("rename")
@click.argument("old")
@click.argument("new")
@initialised
def queue_rename(old: str, new: str) -> None:
    """Rename queue OLD to NEW; its jobs, tests, claims and history go with it.

    Templates that name OLD exactly are changed to NEW; patterns stay as they are.
    """
    from hcflask.engine.queue_names import rename_queue

    click.echo(rename_queue(_live(old), new, cli_actor()))


def _live(name: str) -> Queue:
    queue = db.session.scalar(Queue.live().where(Queue.name == name))
    if queue is None:
        raise click.ClickException(f"queue: no such queue {shown(name)}")
    return queue


@queue_group.command("set-status")
@click.argument("name")
@click.argument("status")
@click.option("--reason", default="", help="recorded in the queue's history")
@initialised
def queue_set_status(name: str, status: str, reason: str) -> None:
    """Set a queue online, offline or test (as an admin)."""
    from hcflask.engine.actions import set_queue_status

    queue = _live(name)
    set_queue_status(queue, status, actor=cli_actor(), reason=reason)
    click.echo(f"queue {name} is {queue.status}")

"""The ``hc`` command (also ``flask --app hcflask ...``).

Every command that needs the database first makes sure the instance folder
is initialised, so ``hc <anything>`` on an empty folder just works.  Errors
are one line naming the field and the reason, with a non-zero exit.
"""
from __future__ import annotations

import functools
import getpass
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from hcflask import __version__, documents, robot_cli
from hcflask.config import ConfigError, instance_path, write_initial
from hcflask.extensions import db
from hcflask.models import ApiToken, Queue, Template, Test, User, ValidationError

F = TypeVar("F", bound=Callable[..., Any])


def _make_app() -> Flask:
    from hcflask import create_app

    path = instance_path()
    try:
        write_initial(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the instance folder {path}: {exc.strerror}") from None
    return create_app()


def clear_errors(function: F) -> F:
    """Turn validation and configuration errors into one-line CLI errors."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValidationError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _initialised(function: F) -> F:
    """Run the command in an app context on an initialised instance."""

    @with_appcontext
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hcflask.instance import ensure

        ensure(current_app._get_current_object())  # type: ignore[attr-defined]
        return function(*args, **kwargs)

    return clear_errors(wrapper)  # type: ignore[return-value]


def _get(model: Any, field: str, value: Any, label: str) -> Any:
    row = db.session.scalar(select(model).where(getattr(model, field) == value))
    if row is None:
        raise click.ClickException(f"{label}: no such {model.__name__.lower()} {value!r}")
    return row


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# -- serve / init ------------------------------------------------------------------
@click.command("init")
@_initialised
def init_command() -> None:
    """Create the instance folder, its config, database and demo (idempotent)."""
    from hcflask.serve import admin_hint

    click.echo(f"instance ready: {current_app.instance_path}")
    click.echo(f"create the first admin with: {admin_hint(current_app.instance_path)}")


@click.command("serve")
@click.option("--bind", help="HOST:PORT to listen on (default from [server] bind/port, HC_PORT)")
@click.option("--workers", type=click.IntRange(1, 64), help="gunicorn worker processes")
@click.option("--threads", type=click.IntRange(1, 64), help="threads per worker")
@click.option("--no-scheduler", is_flag=True, help="serve the web only (no ticks in this process)")
@_initialised
def serve_command(bind: str | None, workers: int | None, threads: int | None, no_scheduler: bool) -> None:
    """Run the service: web, API and (in one worker) the scheduler."""
    from hcflask.serve import serve

    config = current_app.config
    serve(
        bind=bind or f"{config['SERVER_BIND']}:{config['SERVER_PORT']}",
        workers=workers or config["SERVER_WORKERS"],
        threads=threads or config["SERVER_THREADS"],
        scheduler=not no_scheduler,
        instance=current_app.instance_path,
    )


# -- templates ---------------------------------------------------------------------
@click.group("template")
def template_group() -> None:
    """Templates: the test types (files in YAML, TOML or JSON)."""


def _import(path: Path, replace: bool) -> Template:
    from hcflask.engine.actions import save_template

    doc = documents.load(path)
    if not isinstance(doc, dict):
        raise ValidationError("file", f"{path}: expected a mapping at the top level")
    existing = db.session.scalar(select(Template).where(Template.name == doc.get("name")))
    if existing is not None and not replace:
        raise ValidationError("name", f"a template named {existing.name!r} exists already (use import)")
    return save_template(doc, existing)


@template_group.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@_initialised
def template_add(file: Path) -> None:
    """Create a template from FILE (fails if the name exists)."""
    template = _import(file, replace=False)
    click.echo(f"template {template.name} created (id {template.id})")


@template_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@_initialised
def template_import(file: Path) -> None:
    """Create or update a template from FILE (by its name)."""
    template = _import(file, replace=True)
    click.echo(f"template {template.name} saved (id {template.id})")


@template_group.command("list")
@_initialised
def template_list() -> None:
    """List templates."""
    rows = [
        (t.id, t.name, "yes" if t.active else "no", ",".join(t.queues), t.jobs_in_flight,
         "yes" if t.autoexclusion else "no", "yes" if t.renew else "no")
        for t in db.session.scalars(select(Template).order_by(Template.name))
    ]
    _table(rows, ("id", "name", "active", "queues", "in-flight", "autoexcl", "renew"))


@template_group.command("show")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(documents.FORMATS), default="yaml")
@_initialised
def template_show(name: str, fmt: str) -> None:
    """Print a template as a document."""
    click.echo(documents.dump(_get(Template, "name", name, "name").to_document(), fmt), nl=False)


@template_group.command("export")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="file (format from its suffix)")
@click.option("--format", "fmt", type=click.Choice(documents.FORMATS))
@_initialised
def template_export(name: str, output: Path | None, fmt: str | None) -> None:
    """Write a template to a file (or stdout), ready for git and import."""
    fmt = fmt or (documents.format_of(output) if output else "yaml")
    text = documents.dump(_get(Template, "name", name, "name").to_document(), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")


# -- tests -------------------------------------------------------------------------
@click.group("test")
def test_group() -> None:
    """Tests: runs of a template."""


@test_group.command("start")
@click.argument("template")
@click.option("--host", help="the hcflask process (host_name) that drives it; default: the core's")
@_initialised
def test_start(template: str, host: str | None) -> None:
    """Start a test of TEMPLATE now."""
    from hcflask.engine.actions import start_test

    test = start_test(_get(Template, "name", template, "template"), actor="cli", host=host)
    click.echo(f"test {test.id} of {template} scheduled (starts at the next core tick)")


@test_group.command("list")
@click.option("--state", help="only tests in this state")
@_initialised
def test_list(state: str | None) -> None:
    """List tests, newest first."""
    query = select(Test).order_by(Test.id.desc()).limit(100)
    if state:
        query = query.where(Test.state == state)
    rows = [(t.id, t.state, t.template_name, t.host or "", str(t.start_at)[:19], str(t.end_at)[:19])
            for t in db.session.scalars(query)]
    _table(rows, ("id", "state", "template", "host", "start", "end"))


@test_group.command("cancel")
@click.argument("test_id", type=int)
@click.option("--reason", default="", help="recorded with the test")
@_initialised
def test_cancel(test_id: int, reason: str) -> None:
    """Cancel a test (its pending jobs are cancelled at the next core tick)."""
    from hcflask.engine.actions import cancel_test

    cancel_test(_get(Test, "id", test_id, "test"), actor="cli", reason=reason)
    click.echo(f"test {test_id} cancelled")


# -- queues ------------------------------------------------------------------------
@click.group("queue")
def queue_group() -> None:
    """Queues: where test jobs run."""


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError("option", f"expected KEY=VALUE, got {pair!r}")
        if key == "extra_args":
            options.setdefault(key, []).append(value)
        else:
            options[key] = value
    return options


@queue_group.command("add")
@click.argument("name")
@click.option("--backend", required=True, help="local, slurm or panda")
@click.option("--option", "-o", "pairs", multiple=True, help="backend option KEY=VALUE (repeatable)")
@click.option("--description", default="")
@click.option("--no-autoexclusion", is_flag=True, help="the robot never excludes this queue")
@_initialised
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
@_initialised
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
@_initialised
def queue_discover(backend: str, names: tuple[str, ...], add_all: bool, prefix: str) -> None:
    """List what BACKEND offers (e.g. slurm: the partitions sinfo reports) and create queues for some."""
    from hcflask.engine.actions import discover_queues

    offered = discover_queues(backend)
    existing = set(db.session.scalars(select(Queue.name)))
    rows = [(o["name"], _duration(o.get("time_limit")), o.get("nodes", ""),
             "up" if o.get("available", True) else "down", "yes" if o.get("default") else "",
             "exists" if prefix + o["name"] in existing else "") for o in offered]
    _table(rows, ("name", "time limit", "nodes", "state", "default", "queue"))
    known = {o["name"]: o for o in offered}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError("add", f"{backend} offers no {unknown[0]!r} (offered: {', '.join(known)})")
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
    return create_queue(prefix + offered["name"], backend, offered["options"], description)


@queue_group.command("list")
@_initialised
def queue_list() -> None:
    """List queues with their status and backend."""
    rows = [(q.name, q.backend, q.status, "yes" if q.autoexclusion else "no",
             " ".join(f"{k}={v}" for k, v in sorted((q.options or {}).items())))
            for q in db.session.scalars(select(Queue).order_by(Queue.name))]
    _table(rows, ("name", "backend", "status", "autoexcl", "options"))


@queue_group.command("set-status")
@click.argument("name")
@click.argument("status")
@click.option("--reason", default="", help="recorded in the queue's history")
@_initialised
def queue_set_status(name: str, status: str, reason: str) -> None:
    """Set a queue online, offline or test (as an admin)."""
    from hcflask.engine.actions import set_queue_status

    queue = _get(Queue, "name", name, "queue")
    set_queue_status(queue, status, actor=f"admin:{getpass.getuser()} (cli)", reason=reason)
    click.echo(f"queue {name} is {queue.status}")


# -- users and tokens -------------------------------------------------------------
@click.group("user")
def user_group() -> None:
    """Admins of the web UI."""


@user_group.command("add")
@click.argument("username")
@click.option("--password", envvar="HC_PASSWORD", help="default: asked for (or $HC_PASSWORD)")
@_initialised
def user_add(username: str, password: str | None) -> None:
    """Create an admin (or reset their password)."""
    if not username.isidentifier() and not username.replace("-", "_").replace(".", "_").isidentifier():
        raise ValidationError("username", "letters, digits, '_', '-', '.'")
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise ValidationError("password", "at least 8 characters")
    user = db.session.scalar(select(User).where(User.username == username)) or User(username=username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"admin {username} saved")


@click.group("token")
def token_group() -> None:
    """API tokens (for writes through /api/v1)."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="", help="what the token is for")
@_initialised
def token_create(username: str, name: str) -> None:
    """Create an API token for USERNAME; it is shown once."""
    _, token = ApiToken.issue(_get(User, "username", username, "username"), name)
    db.session.commit()
    click.echo(token)


COMMANDS = (init_command, serve_command, template_group, test_group, queue_group, user_group, token_group,
            robot_cli.robot_group)


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"hcflask {__version__}")
        ctx.exit()


@click.group(cls=FlaskGroup, create_app=_make_app, add_version_option=False, add_default_commands=False,
             load_dotenv=False, set_debug_flag=False)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
def cli() -> None:
    """hcflask: a local HammerCloud (HC_INSTANCE selects the instance folder)."""
    logging.basicConfig(level=os.environ.get("HC_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    """The ``hc`` entry point: a configuration error is one line, not a traceback."""
    try:
        cli()
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)

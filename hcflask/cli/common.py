"""What every ``hc`` command shares: an initialised instance, one-line
errors, looking rows up by name, and plain tables."""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from hcflask.config import ConfigError
from hcflask.extensions import db
from hcflask.models import ValidationError

F = TypeVar("F", bound=Callable[..., Any])


class ConfigProblem(click.ClickException):
    """A configuration error: exit status 2, as for bad usage, not 1 as for bad input."""

    exit_code = 2


def clear_errors(function: F) -> F:
    """Turn validation and configuration errors into one-line CLI errors."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ValidationError as exc:
            raise click.ClickException(str(exc)) from None
        except ConfigError as exc:
            raise ConfigProblem(str(exc)) from None

    return wrapper  # type: ignore[return-value]


#: commands that only read (or only serve, or copy the database): every other one is audited
READ_COMMANDS = {"list", "show", "export", "status", "replay", "init", "serve", "report", "current", "history",
                 "backup", "signatures", "validate"}


def initialised(function: F) -> F:
    """Run the command in an app context on an initialised instance; audit it if it writes,
    refused attempts (a bad argument, a refusal, a no at the confirmation) included."""

    @with_appcontext
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hcflask.instance import ensure

        ensure(current_app._get_current_object())  # type: ignore[attr-defined]
        ctx = click.get_current_context()
        try:
            result = function(*args, **kwargs)
        except ValidationError as exc:
            _audit(ctx, 1, str(exc))
            raise
        except click.ClickException as exc:
            _audit(ctx, exc.exit_code, exc.format_message())
            raise
        except click.Abort:
            _audit(ctx, 1, "not confirmed")
            raise
        _audit(ctx, 0, "")
        return result

    return clear_errors(wrapper)  # type: ignore[return-value]


def with_web() -> None:
    """Add the pages to this command's app (built without them: :func:`hcflask.create_app`,
    ``web=False``), for a command that renders one, e.g. ``--html``."""
    from hcflask import add_web

    add_web(current_app._get_current_object())  # type: ignore[attr-defined]


def get_row(model: Any, field: str, value: Any, label: str) -> Any:
    row = db.session.scalar(select(model).where(getattr(model, field) == value))
    if row is None:
        raise click.ClickException(f"{label}: no such {model.__name__.lower()} {value!r}")
    return row


def table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def utc(value: datetime | str | None, missing: str = "-") -> str:
    """A time as pages and reports show it too (``2026-12-03 08:25:02 UTC``), or ``missing``;
    the CLI stays UTC (a display zone is a web user's setting)."""
    from hcflask.times import shown

    return shown(value, missing=missing)


#: ``--yes`` of the commands that delete something (they ask first without it)
yes_option = click.option("--yes", is_flag=True, help="do not ask for confirmation")


def confirm(yes: bool, question: str) -> None:
    """Ask before deleting, unless ``--yes``; no is an abort (exit 1)."""
    if not yes:
        click.confirm(question, abort=True)


def _writes(ctx: click.Context) -> bool:
    name = ctx.command.name
    if name in READ_COMMANDS or (name == "purge" and ctx.params.get("dry_run")):
        return False
    return not (name == "discover" and not ctx.params.get("names") and not ctx.params.get("add_all"))


def _audit(ctx: click.Context, status: int, reason: str) -> None:
    """A write attempt from the command line, by ``cli:<unix user>``: its command and arguments
    (never its options, which may hold a password), its exit status and why it failed."""
    if not _writes(ctx):
        return
    from hcflask.access.accounts import cli_actor  # here: a reading command never imports the web
    from hcflask.web.security import record

    arguments = [str(ctx.params[p.name]) for p in ctx.command.params
                 if isinstance(p, click.Argument) and p.name and ctx.params.get(p.name) is not None]
    if status:
        db.session.rollback()  # a refused command's half-done changes are not committed with its entry
    record(cli_actor(), ctx.command_path.split(" ", 1)[-1], " ".join(arguments), status, "local", "cli", reason)
    db.session.commit()

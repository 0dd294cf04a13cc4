"""``hc db``: the schema (upgrade, current, history) and a consistent backup.

Only what an admin needs: Alembic's developer commands (init, migrate,
revision, downgrade) are for the source tree, not for an instance.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import make_url

from hcflask.cli.common import clear_errors
from hcflask.models import ValidationError, utcnow


@click.group("db")
def db_group() -> None:
    """The database: schema version and backups."""


def _directory() -> str:
    from hcflask import migrations

    return migrations(current_app._get_current_object())  # type: ignore[attr-defined]


@db_group.command("upgrade")
@with_appcontext
@clear_errors
def db_upgrade() -> None:
    """Bring the schema to the newest version (every start does this too)."""
    from flask_migrate import upgrade

    upgrade(directory=_directory())
    click.echo("database is at the newest schema")


@db_group.command("current")
@with_appcontext
@clear_errors
def db_current() -> None:
    """Show the schema version of the database."""
    from flask_migrate import current

    current(directory=_directory())


@db_group.command("history")
@with_appcontext
@clear_errors
def db_history() -> None:
    """List the schema versions this hcflask knows."""
    from flask_migrate import history

    history(directory=_directory())


@db_group.command("backup")
@click.argument("output", required=False, type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
@clear_errors
def db_backup(output: Path | None) -> None:
    """Copy the SQLite database, consistently, while the service runs.

    SQLite's online backup API copies a snapshot page by page and restarts
    if a writer changes a page meanwhile, so the copy is never half-written
    (a plain ``cp`` of a WAL database can be).  Default OUTPUT:
    <instance>/backups/hc-<UTC time>.sqlite.
    """
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ValidationError("database", "hc db backup copies SQLite; back up PostgreSQL with pg_dump")
    target = output or Path(current_app.instance_path, "backups", f"hc-{utcnow():%Y%m%dT%H%M%SZ}.sqlite")
    if target.exists():
        raise ValidationError("output", f"{target} exists already")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy)
    finally:
        copy.close()
        source.close()
    click.echo(f"backup written: {target} ({target.stat().st_size} bytes)")

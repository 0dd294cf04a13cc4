"""The ``hc`` command (also ``flask --app hcflask ...``).

Every command that needs the database first makes sure the instance folder
is initialised, so ``hc <anything>`` on an empty folder just works; ``--help``
and ``--version`` build no app and touch no file.  Errors are one line naming
the field and the reason, with a non-zero exit.  Commands live in one module
per area: :mod:`service` (init, serve, user, token),
:mod:`templates` (template, test), :mod:`queues`, :mod:`robot`, :mod:`database`, :mod:`doctor`.
"""
from __future__ import annotations

import logging
import os
import sys

import click
from flask import Flask
from flask.cli import ScriptInfo

from hcflask import __version__
from hcflask.cli.catalog import catalog_group, commission_command
from hcflask.cli.data import purge_command  # also adds `hc db rollup` to the db group
from hcflask.cli.database import db_group
from hcflask.cli.doctor import doctor_command
from hcflask.cli.queues import queue_group
from hcflask.cli.robot import robot_group
from hcflask.cli.service import init_command, serve_command, token_group, user_group
from hcflask.cli.templates import template_group, test_group
from hcflask.config import ConfigError, instance_path, write_initial

COMMANDS = (init_command, serve_command, template_group, test_group, queue_group, user_group, token_group,
            robot_group, db_group, purge_command, catalog_group, commission_command, doctor_command)


def _make_app() -> Flask:
    from hcflask import create_app

    path = instance_path()
    try:
        write_initial(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the instance folder {path}: {exc.strerror}") from None
    return create_app()


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"hcflask {__version__}")
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """hcflask: a local HammerCloud (HC_INSTANCE selects the instance folder, default ./instance)."""
    logging.basicConfig(level=os.environ.get("HC_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the app is built only when a command needs it (flask's with_appcontext loads it from here)
    ctx.obj = ScriptInfo(create_app=_make_app, set_debug_flag=False)


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """The ``hc`` entry point: a configuration error is one line, not a traceback."""
    try:
        cli()
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)

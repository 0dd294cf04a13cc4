"""The ``hc`` command (also ``flask --app hcflask ...``).

Every command that needs the database first makes sure the instance folder
is initialised, so ``hc <anything>`` on an empty folder just works; ``--help``
and ``--version`` build no app and touch no file.  Errors are one line naming
the field and the reason, with a non-zero exit.  Commands live in one module
per area: :mod:`service` (init, serve, user, token),
:mod:`templates` (template, test), :mod:`queues`, :mod:`robot`, :mod:`database`, :mod:`doctor`,
:mod:`catalog`.

Every ``hc`` run is a new process, so what it imports is most of what it costs:
a command's module is imported only when that command runs (Click's lazy
group), ``--help`` and ``--version`` import neither Flask nor SQLAlchemy, and
the app a command builds has no web (:func:`hcflask.create_app`, ``web=False``).
``bench/bench_cli.py`` measures it (docs/operations.md).

Adding a command:

* a subcommand of an existing group (``hc queue show``) is a function decorated
  ``@queue_group.command("show")`` in that group's module, nothing else: the
  module is imported when its group runs, so its subcommands come with it;
* a new top-level command or group is one entry in :data:`COMMANDS`: its name,
  ``"module:attribute"`` and the first paragraph of its help (what ``hc --help``
  shows without importing it; tests/test_cli_lazy.py fails, naming the entry,
  when the two differ);
* what only one command needs (the web, Alembic, ``requests``, a backend) is
  imported inside that command's function, not at the top of the module: every
  command of the group pays for the module's imports (tests/test_cli_lazy.py
  checks that ``hc queue list`` imports none of them).
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

import click

from hcflask import __version__
from hcflask.config import ConfigError, instance_path, write_initial

if TYPE_CHECKING:
    from flask import Flask

#: every command: its object (``module:name``) and the first line of its help, which ``hc --help``
#: shows without importing the module (tests/test_cli_lazy.py checks the two agree)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("hcflask.cli.service:init_command",
             "Create the instance folder, its config, database and demo (idempotent)."),
    "serve": ("hcflask.cli.service:serve_command", "Run the service: web, API and (in one worker) the scheduler."),
    "template": ("hcflask.cli.templates:template_group", "Templates: the test types (files in YAML, TOML or JSON)."),
    "test": ("hcflask.cli.templates:test_group", "Tests: runs of a template."),
    "queue": ("hcflask.cli.queues:queue_group", "Queues: where test jobs run."),
    "user": ("hcflask.cli.service:user_group",
             "Users of the web UI and the API, and their roles (viewer, operator, admin)."),
    "token": ("hcflask.cli.service:token_group", "API tokens (for writes through /api/v1)."),
    "robot": ("hcflask.cli.robot:robot_group", "Auto-exclusion: switch it, see its verdicts, run one pass."),
    # from cli.data, which adds `hc db rollup` to the group of cli.database
    "db": ("hcflask.cli.data:db_group", "The database: schema version and backups."),
    "purge": ("hcflask.cli.data:purge_command",
              "Delete job rows and work dirs older than the [retention] limits (rollups stay)."),
    "catalog": ("hcflask.cli.catalog:catalog_group",
                "The probe catalogue: templates that prove a partition (node, scratch I/O, CPU, MPI, ...)."),
    "commission": ("hcflask.cli.catalog:commission_command",
                   "Prove QUEUE is ready: install the missing probes, run each RUNS times on it, wait, report."),
    "doctor": ("hcflask.cli.doctor:doctor_command",
               "Check schema, core lease, host leases and clocks, ticks, stuck jobs, outbox, disk, backends."),
}


def load(name: str) -> click.Command:
    """The command ``name`` of :data:`COMMANDS`, importing its module now."""
    module, _, attribute = COMMANDS[name][0].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{COMMANDS[name][0]} is not a click command")
    return command


class LazyGroup(click.Group):
    """Click's lazy-loading group (its docs, "Lazily Loading Subcommands"), plus the one thing
    that pattern leaves slow: the command list of ``--help`` comes from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        # an unloaded command's help is shortened as Click shortens a loaded one's
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in self.list_commands(ctx) if name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _make_app() -> Flask:
    from hcflask import create_app

    path = instance_path()
    try:
        write_initial(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the instance folder {path}: {exc.strerror}") from None
    app = create_app(web=False)
    _started()
    return app


def _started() -> None:
    """The start-up is over (see :func:`main`): what it made lives until the command exits, so
    the collector leaves it alone from now on (:func:`gc.freeze`) and runs for the command's work."""
    gc.freeze()
    gc.enable()


def register(app: Flask) -> None:
    """Every command on ``app.cli`` (``flask --app hcflask ...``, ``app.test_cli_runner()``)."""
    for name in COMMANDS:
        app.cli.add_command(load(name), name)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"hcflask {__version__}")
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """hcflask: a local HammerCloud (HC_INSTANCE selects the instance folder, default ./instance)."""
    logging.basicConfig(level=os.environ.get("HC_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from flask.cli import ScriptInfo

    # the app is built only when a command needs it (flask's with_appcontext loads it from here)
    ctx.obj = ScriptInfo(create_app=_make_app, set_debug_flag=False)


def main() -> None:
    """The ``hc`` entry point: a configuration error is one line, not a traceback.

    The cyclic garbage collector is off until the command's app is built (:func:`_started`):
    a start-up allocates the objects of SQLAlchemy, Flask and the ORM, none of them garbage, and
    collecting in between costs a fifth of a reading command's CPU time (bench/bench_cli.py).
    Every command that runs for long (``serve``, ``commission``) builds its app first."""
    gc.disable()
    try:
        cli()
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)

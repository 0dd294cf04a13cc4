"""``hc doctor``: one line per check of this instance, exit 1 when something is wrong."""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from hcflask.cli.common import clear_errors


@click.command("doctor")
@with_appcontext
@clear_errors
def doctor_command() -> None:
    """Check schema, core lease, host leases and clocks, ticks, stuck jobs, outbox, disk, backends."""
    from hcflask.engine.service import doctor

    checks = doctor.run()
    for check in checks:
        click.echo(str(check))
    if any(c.level == "FAIL" for c in checks):
        sys.exit(1)

"""``hc db rollup --rebuild`` and ``hc purge``: the data that grows (docs/scale.md).

``rollup`` joins the ``db`` group of :mod:`hcflask.cli.database`, so
``hc db upgrade`` and ``hc db rollup`` sit side by side.
"""
from __future__ import annotations

import click
from flask import current_app

from hcflask.cli.common import initialised, table, utc
from hcflask.cli.database import db_group
from hcflask.extensions import db
from hcflask.models import utcnow


@db_group.command("rollup")
@click.option("--rebuild", is_flag=True, required=True,
              help="recompute the rollups from the job rows (after loading data with other tools)")
@click.option("--all", "everything", is_flag=True,
              help="also the days retention has purged (their rollups would be lost)")
@initialised
def rollup_command(rebuild: bool, everything: bool) -> None:
    """Recompute the rollups (per queue × template × day) from the raw job rows.

    Days whose job rows retention may have deleted keep their rollups unless --all.
    """
    from hcflask.engine.data.rollups import kept_since
    from hcflask.engine.data.rollups import rebuild as rebuild_rollups

    config = current_app.config
    since = None if everything else kept_since(utcnow(), config["RETENTION_JOBS_DAYS"],
                                               config["RETENTION_FAILED_DAYS"])
    jobs = rebuild_rollups(db.session(), since)
    db.session.commit()
    click.echo(f"rollups rebuilt from {jobs} finished jobs" + (f" (days from {since} on)" if since else ""))


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="only show what would be deleted")
@initialised
def purge_command(dry_run: bool) -> None:
    """Delete job rows and work dirs older than the [retention] limits (rollups stay)."""
    from hcflask.engine.data.retention import plan, purge

    if dry_run:
        table([(what, n, f"before {utc(cutoff)}") for what, n, cutoff in plan()],
              ("would delete", "count", "ended"))
        return
    done = purge(budget_seconds=None)
    click.echo(f"deleted {done['jobs']} jobs and {done['workdirs']} work dirs")

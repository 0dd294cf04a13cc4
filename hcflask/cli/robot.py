"""``hc robot``: the switch, what the robot thinks now, and one pass by hand."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import click

from hcflask.access.accounts import cli_actor
from hcflask.cli.common import initialised, utc


@click.group("robot")
def robot_group() -> None:
    """Auto-exclusion: switch it, see its verdicts, run one pass."""


@robot_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@initialised
def status(as_json: bool) -> None:
    """The switch, open alerts and the last verdict on each queue."""
    from flask import current_app

    from hcflask.engine.robot.alerts import open_alerts
    from hcflask.models import RobotState

    state = RobotState.get()
    alerts = open_alerts()
    in_config = bool(current_app.config["ROBOT"].get("enabled", True))
    if as_json:
        click.echo(json.dumps({**state.to_dict(), "enabled_in_config": in_config,
                               "active": state.enabled and in_config, "queues": state.last_summary,
                               "alerts": [a.to_dict() for a in alerts]}, indent=2))
        return
    notes = [] if in_config else ["[robot] enabled = false in hc.toml"]
    if state.changed_by:
        notes.append(f"switched {'on' if state.enabled else 'off'} by {state.changed_by}"
                     + (f": {state.reason}" if state.reason else ""))
    word = "on" if state.enabled and in_config else "off"
    click.echo(f"auto-exclusion: {word}" + (f" ({'; '.join(notes)})" if notes else ""))
    click.echo(f"last pass: {utc(state.last_run_at, 'never')}")
    for alert in alerts:
        click.echo(f"ALERT [{alert.kind}] {alert.title}: {alert.message}")
    for name, row in sorted((state.last_summary or {}).items()):
        outcomes = " ".join(f"{t}={o or '-'}" for t, o in (row.get("templates") or {}).items())
        held = f" [{row['held']}]" if row.get("held") else ""
        click.echo(f"{name:<24} {row.get('status', ''):<9} {row.get('verdict', ''):<11} {outcomes}  "
                   f"{row.get('reason', '')}{held}".rstrip())


@robot_group.command("signatures")
@click.option("--since", default="", metavar="DATE",
              help="from this UTC day (YYYY-MM-DD, or a number of days back; default 7)")
@click.option("--json", "as_json", is_flag=True, help="print them as JSON")
@initialised
def signatures(since: str, as_json: bool) -> None:
    """Failure signatures (the cause of a failure without its node, address, time ...), with how
    many queues and jobs carry them: what the robot and its outage guard group by."""
    from hcflask.models import utcnow
    from hcflask.web.robot.stats import signatures as rows

    first = _day(since, utcnow().date())
    found = rows(first)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo(f"no failed or lost jobs since {first}")
        return
    click.echo(f"{'queues':>6} {'jobs':>7}  {'days':<23}  signature (since {first})")
    for row in found:
        click.echo(f"{row['queues']:>6} {row['jobs']:>7}  {row['first_day']} {row['last_day']}  {row['signature']}")


def _day(text: str, today: date) -> date:
    """``--since``: a day, or a number of days back."""
    text = text.strip()
    if not text:
        return today - timedelta(days=7)
    if text.isdigit():
        return today - timedelta(days=int(text))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"expected a day (2026-11-24) or a number of days, got {text[:64]!r}",
                                 param_hint="--since") from None


def _switch(enabled: bool, reason: str) -> None:
    from hcflask.engine.robot.robot import set_enabled

    event = set_enabled(enabled, cli_actor(), reason)
    word = "on" if enabled else "off"
    kept = f"; reason recorded: {reason}" if reason and not event else ""
    click.echo(f"auto-exclusion is {word}" + ("" if event else f" (it already was{kept})"))


@robot_group.command("enable")
@click.option("--reason", default="", help="why (kept in the robot log)")
@initialised
def enable(reason: str) -> None:
    """Switch auto-exclusion on."""
    _switch(True, reason)


@robot_group.command("disable")
@click.option("--reason", default="", help="why (kept in the robot log)")
@initialised
def disable(reason: str) -> None:
    """Switch auto-exclusion off (queues stay as they are; nothing is excluded or recovered)."""
    _switch(False, reason)


@robot_group.command("run")
@initialised
def run_once() -> None:
    """Run one robot pass and the band flagging now, and print what changed.

    Only where no core runs at the same time: it takes the core role (the
    instance lock on SQLite, the core lease on PostgreSQL) for the pass.
    """
    from hcflask.engine.robot.bands import flag_pass
    from hcflask.engine.robot.robot import robot_pass

    with core_role():
        counts = {**robot_pass(), **flag_pass()}
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@contextlib.contextmanager
def core_role() -> Iterator[None]:
    """Hold the core role for a moment, or fail with one line saying who has it."""
    from flask import current_app

    from hcflask.engine.service.corelease import CoreRole
    from hcflask.engine.service.lock import InstanceLock
    from hcflask.extensions import db

    core = CoreRole()
    local = None if db.engine.dialect.name == "postgresql" else InstanceLock(
        Path(current_app.instance_path) / "scheduler.lock")
    if not (core.acquire() if local is None else local.acquire()):
        raise click.ClickException("the core runs in hc serve right now (it runs the robot every core tick); "
                                   "stop it or wait for its next pass")
    try:
        yield
    finally:
        core.release()
        if local is not None:
            local.release()


@robot_group.command("replay")
@click.option("--from", "start", required=True, help="first pass time, ISO (UTC), e.g. 2026-11-24T08:00")
@click.option("--to", "end", required=True, help="last pass time, ISO (UTC)")
@click.option("--step", default="5m", show_default=True, help="time between passes: 300, 90s, 5m, 1h")
@click.option("--set", "sets", multiple=True, help="[robot] setting KEY=VALUE for this replay (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print every pass as JSON")
@initialised
def replay_cmd(start: str, end: str, step: str, sets: tuple[str, ...], as_json: bool) -> None:
    """Run the rules over stored job history, pass by pass; nothing is written."""
    from hcflask.engine.robot.replay import parse_sets, parse_step, replay
    from hcflask.times import parse_time

    result = replay(parse_time(start, "from"), parse_time(end, "to"), parse_step(step), parse_sets(sets))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for row in result["passes"]:
        for kind in ("excluded", "recovered", "rolled_back"):
            for move in row[kind]:
                click.echo(f"{utc(row['time'])}  {kind:<11} {move['queue']:<24} {move['reason']}")
        for alert in row["alerts"]:
            click.echo(f"{utc(row['time'])}  alert {alert['event']:<5} {alert['message']}")
    totals = result["totals"]
    click.echo(f"{len(result['passes'])} passes: excluded={totals['excluded']} recovered={totals['recovered']} "
               f"rolled_back={totals['rolled_back']} alerts={totals['alerts']}; "
               f"excluded at the end: {', '.join(result['excluded_at_end']) or 'none'}")

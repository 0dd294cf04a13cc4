"""``hc catalog`` (the probes shipped with hcflask) and ``hc commission`` (run them on a queue)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from flask import current_app
from sqlalchemy import select

from hcflask import catalog
from hcflask.cli.common import initialised, table, with_web
from hcflask.extensions import db
from hcflask.models import Template, ValidationError
from hcflask.states import JobState


@click.group("catalog")
def catalog_group() -> None:
    """The probe catalogue: templates that prove a partition (node, scratch I/O, CPU, MPI, ...)."""


@catalog_group.command("list")
@initialised
def catalog_list() -> None:
    """List the probes, and whether each is installed as a template."""
    installed = set(db.session.scalars(select(Template.name)))
    rows = [(p.name, p.template_name, "yes" if p.template_name in installed else "no",
             ", ".join(x.name for x in p.params) or "–", p.description[:70]) for p in catalog.probes()]
    table(rows, ("probe", "template", "installed", "settings", "what it checks"))


@catalog_group.command("show")
@click.argument("name")
def catalog_show(name: str) -> None:
    """Print a probe's template file (the settings are its `# hc-param:` lines)."""
    try:
        click.echo(catalog.get(name).text(), nl=False)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None


@catalog_group.command("install")
@click.argument("names", nargs=-1, required=True)
@click.option("--queues", "queues", multiple=True, help="queue name or pattern (repeatable; default: the file's, *)")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="a probe setting (see `hc catalog show`), e.g. --set ENDPOINTS='db.site:5432'")
@initialised
def catalog_install(names: tuple[str, ...], queues: tuple[str, ...], settings: tuple[str, ...]) -> None:
    """Install probes as templates (NAMES may be patterns, e.g. '*'); an installed one is updated."""
    from hcflask.engine.actions import save_template

    chosen = [p for p in catalog.probes() if catalog.matches(p, list(names))]
    unknown = [n for n in names if not any(catalog.matches(p, [n]) for p in catalog.probes())]
    if unknown:
        catalog.get(unknown[0], "names")  # raises, naming the known probes
    values = catalog.parse_settings(list(settings))
    unused = set(values) - {x.name for p in chosen for x in p.params}
    if unused:  # before anything is written
        raise ValidationError("set", f"no chosen probe has the setting {', '.join(sorted(unused))} "
                                     f"(see hc catalog show {chosen[0].name if len(chosen) == 1 else 'NAME'})")
    for probe in chosen:
        mine = {k: v for k, v in values.items() if k in {p.name for p in probe.params}}
        doc = catalog.render(probe, mine, list(queues) or None)
        existing = db.session.scalar(select(Template).where(Template.name == probe.template_name))
        template = save_template(doc, existing)
        click.echo(f"{'updated' if existing else 'installed'} {template.name} (id {template.id})")


def _line(state: dict[str, Any], clock: float) -> str:
    parts = []
    for row in state["probes"]:
        jobs = row["jobs"]
        done = sum(n for s, n in jobs.items() if JobState(s).final)
        mark = ("✗" if jobs.get("failed") or jobs.get("lost") else "n/a" if jobs.get("not_applicable") and
                done == jobs.get("not_applicable") else "✓") if done >= row["runs"] else "…"
        parts.append(f"{row['probe']} {done}/{row['runs']} {mark}")
    return f"[{time.monotonic() - clock:5.0f} s] " + "  ".join(parts)


def print_report(data: dict[str, Any]) -> None:
    """The commissioning report as text: one line per probe, then the node facts."""
    click.echo(f"Commissioning {data['key']} of queue {data['queue']}: "
               f"{'PASSED' if data['passed'] else 'FAILED: ' + ', '.join(data['failed'])}"
               + (f" in {data['seconds']:.0f} s" if data["seconds"] is not None else ""))
    rows = []
    for p in data["probes"]:
        shown = []
        for m in p["metrics"]:
            s = m["summary"]
            if not s:
                continue
            ref = " ".join(x for x in (f">={m['lower']:g}" if m["lower"] is not None else "",
                                       f"<={m['upper']:g}" if m["upper"] is not None else "") if x)
            shown.append(f"{m['metric']}={s['median']:g}{(' ' + m['unit']) if m['unit'] else ''}"
                         + (f" ({ref})" if ref else ""))
        why = p["reasons"][0]["reason"] if p["reasons"] and p["verdict"] != "pass" else ""
        rows.append((p["probe"], p["verdict"], " ".join(f"{n} {s}" for s, n in sorted(p["jobs"].items())),
                     "; ".join(shown) or "–", why[:90]))
    table(rows, ("probe", "verdict", "jobs", "metrics (median, reference)", "reason"))
    for p in data["probes"]:
        if p["stress"]:
            _print_stress(p)
    if data["node_facts"]:
        click.echo("\nNode facts:")
        for name, value in data["node_facts"].items():
            click.echo(f"  {name}: {value}")


def _print_stress(probe: dict[str, Any]) -> None:
    stress, d = probe["stress"], probe["stress"]["distributions"]
    rate = "–" if stress["success_rate"] is None else f"{100 * stress['success_rate']:.1f} %"
    medians = ", ".join(f"{k} {d[k]['median']:.2f}" for k in ("queue_wait", "run_time", "cpu_efficiency") if d.get(k))
    click.echo(f"\nStress test {probe['template']} (test {probe['test']}): {stress['judged']} judged, "
               f"success {rate}; medians: {medians or '–'}")
    for step in stress["steps"]:
        for q in step["queues"]:
            click.echo(f"  step {step['step'] + 1} from {step['at']} s: in flight asked {q['asked']}, "
                       f"reached {q['in_flight_reached']}, running {q['running_reached']}, "
                       f"started/min {q['started_per_minute']}")


@click.command("commission")
@click.argument("queue")
@click.option("--probes", "probes",
              help="comma-separated probe names (default: the whole catalogue); a template name runs that "
                   "template too (a stress template with its own ramp, reported with its throughput)")
@click.option("--runs", type=click.IntRange(1, 100), default=1, show_default=True, help="jobs per probe")
@click.option("--timeout", type=click.IntRange(60, 7 * 86400), default=1800, show_default=True,
              help="seconds before jobs still unfinished are cancelled (and their probe fails)")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path),
              help="also write the report as one self-contained HTML file")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON instead of a table")
@initialised
def commission_command(queue: str, probes: str | None, runs: int, timeout: int, html: Path | None,
                       as_json: bool) -> None:
    """Prove QUEUE is ready: install the missing probes, run each RUNS times on it, wait, report.

    Exit code 0 only if every probe that applies passed (not-applicable ones, such as gpu on a node
    without GPUs, do not fail it).  This command drives its jobs itself; no `hc serve` is needed.
    """
    from hcflask.catalog import commission
    from hcflask.engine.service.hosts import HostTaken, claim

    names = [n.strip() for n in probes.split(",") if n.strip()] if probes else None
    if names:
        commission.templates_for(names)  # a bad name fails before anything runs
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app.config["HOST_NAME"] = commission.commission_host()
    key = commission.start(queue, names, runs=runs, timeout=timeout, host=app.config["HOST_NAME"])
    click.echo(f"commissioning {key} of {queue}: {len(commission.tests_of(key))} probes x {runs} run(s)", err=True)
    clock, last = time.monotonic(), ""
    tty = sys.stderr.isatty()

    def show(state: dict[str, Any]) -> None:
        nonlocal last
        line = _line(state, clock)
        if tty:
            click.echo("\r" + line, nl=False, err=True)
        elif line.split("] ", 1)[1] != last:
            click.echo(line, err=True)
        last = line.split("] ", 1)[1]

    try:
        claim()
        commission.drive(app, key, show)
    except HostTaken as exc:  # the name carries this process's id: only a leftover lease of a reused pid
        raise ValidationError("host", str(exc)) from None
    except KeyboardInterrupt:
        commission.abandon(app, key)
        raise click.ClickException(f"interrupted: commissioning {key} cancelled with its jobs") from None
    finally:
        commission.release_host()
    if tty:
        click.echo("", err=True)
    data = commission.report(key)
    if html is not None:
        from hcflask.web.ui.commission import render_file

        with_web()  # the page's template and its filters
        try:
            html.write_text(render_file(data))
        except OSError as exc:
            raise ValidationError("html", f"{html}: {exc.strerror}") from None
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        print_report(data)
    if html is not None:
        click.echo(f"wrote {html}", err=True)
    sys.exit(0 if data["passed"] else 1)

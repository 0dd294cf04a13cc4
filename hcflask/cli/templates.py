"""``hc template`` and ``hc test``: test types as files, and their runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from hcflask import documents
from hcflask.access.accounts import cli_actor
from hcflask.cli.common import confirm, get_row, initialised, table, utc, with_web, yes_option
from hcflask.extensions import db
from hcflask.models import Template, Test, ValidationError
from hcflask.states import TestState


@click.group("template")
def template_group() -> None:
    """Templates: the test types (files in YAML, TOML or JSON)."""


def _read(path: Path) -> dict[str, Any]:
    doc = documents.load(path)
    if not isinstance(doc, dict):
        raise ValidationError("file", f"{path}: expected a mapping at the top level")
    return doc


def _warn(template: Template) -> None:
    from hcflask.engine.actions import queue_warnings

    for warning in queue_warnings(template.to_document()):
        click.echo(f"Warning: {warning}", err=True)


@template_group.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@initialised
def template_add(file: Path) -> None:
    """Create a template from FILE (fails if the name exists)."""
    from hcflask.engine.actions import save_template

    doc = _read(file)
    existing = db.session.scalar(select(Template).where(Template.name == doc.get("name")))
    if existing is not None:
        raise ValidationError("name", f"a template named {existing.name!r} exists already (use import)")
    template = save_template(doc)
    click.echo(f"template {template.name} created (id {template.id})")
    _warn(template)


@template_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@initialised
def template_validate(files: tuple[Path, ...]) -> None:
    """Check template FILES as import would, writing nothing: every error of every file, and
    the queues that match nothing; exit status 1 if any file has an error."""
    from hcflask.engine.actions import queue_warnings
    from hcflask.models import validate_template

    bad = 0
    for path in files:
        try:
            doc = validate_template(_read(path))
        except ValidationError as exc:
            bad += 1
            for field, reason in exc.errors:
                click.echo(f"{path}: {field}: {reason}")
            continue
        existing = db.session.scalar(select(Template.id).where(Template.name == doc["name"]))
        would = f"import replaces template {doc['name']} (id {existing})" if existing else \
            f"import creates template {doc['name']}"
        click.echo(f"{path}: ok ({would})")
        for warning in queue_warnings(doc):
            click.echo(f"{path}: warning: {warning}")
    if bad:
        raise click.ClickException(f"{bad} of {len(files)} file(s) invalid; nothing was written")


@template_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@initialised
def template_import(file: Path) -> None:
    """Create or update a template from FILE (by its name); a deactivated one is activated again."""
    from hcflask.engine.actions import import_template

    template, done = import_template(_read(file))
    click.echo(f"template {template.name} {done} (id {template.id})")
    _warn(template)


def _set_active(name: str, active: bool) -> None:
    from hcflask.engine.actions import set_template_active

    template = get_row(Template, "name", name, "name")
    changed = set_template_active(template, active)
    word = "active" if active else "deactivated"
    click.echo(f"template {name} is {word}" + ("" if changed else " (it already was)"))


@template_group.command("activate")
@click.argument("name")
@initialised
def template_activate(name: str) -> None:
    """Let NAME start tests again (renewing ones renew at the next core tick)."""
    _set_active(name, True)


@template_group.command("deactivate")
@click.argument("name")
@initialised
def template_deactivate(name: str) -> None:
    """Stop NAME from starting tests (running tests go on until they end)."""
    _set_active(name, False)


@template_group.command("remove")
@click.argument("name")
@yes_option
@initialised
def template_remove(name: str, yes: bool) -> None:
    """Delete a template; its tests keep their snapshot (an active one is cancelled)."""
    from hcflask.engine.actions import delete_template

    template = get_row(Template, "name", name, "name")
    confirm(yes, f"delete template {name}? an active test of it is cancelled; past tests stay")
    kept = delete_template(template, cli_actor())
    click.echo(f"template {name} deleted ({kept} tests kept)")


@template_group.command("list")
@initialised
def template_list() -> None:
    """List templates."""
    rows = [
        (t.id, t.name, "yes" if t.active else "no", ",".join(t.queues),
         "ramp" if t.kind == "stress" else t.jobs_in_flight,
         "yes" if t.autoexclusion else "no", "yes" if t.renew else "no")
        for t in db.session.scalars(select(Template).order_by(Template.name))
    ]
    table(rows, ("id", "name", "active", "queues", "in-flight", "autoexcl", "renew"))


@template_group.command("show")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(documents.FORMATS), default="yaml")
@initialised
def template_show(name: str, fmt: str) -> None:
    """Print a template as a document."""
    click.echo(documents.dump(get_row(Template, "name", name, "name").to_file(), fmt), nl=False)


@template_group.command("export")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="file (format from its suffix)")
@click.option("--format", "fmt", type=click.Choice(documents.FORMATS))
@initialised
def template_export(name: str, output: Path | None, fmt: str | None) -> None:
    """Write a template to a file (or stdout), ready for git and import."""
    fmt = fmt or (documents.format_of(output) if output else "yaml")
    text = documents.dump(get_row(Template, "name", name, "name").to_file(), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        documents.write(output, text)
        click.echo(f"wrote {output}")


@click.group("test")
def test_group() -> None:
    """Tests: runs of a template."""


@test_group.command("start")
@click.argument("template")
@click.option("--host", help="the hcflask process (host_name) that drives it; default: the core's")
@initialised
def test_start(template: str, host: str | None) -> None:
    """Start a test of TEMPLATE now."""
    from hcflask.engine.actions import start_test

    test = start_test(get_row(Template, "name", template, "template"), actor=cli_actor(), host=host,
                      refuse_unmatched=True)
    click.echo(f"test {test.id} of {template} scheduled (starts at the next core tick)")


@test_group.command("list")
@click.option("--state", type=click.Choice([s.value for s in TestState]), help="only tests in this state")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@initialised
def test_list(state: str | None, limit: int) -> None:
    """List tests, newest first (end: when it ended, or when it is planned to; note: why it ended so)."""
    query = select(Test).order_by(Test.id.desc()).limit(limit)
    if state:
        query = query.where(Test.state == state)
    rows = [(t.id, t.state, t.template_name, t.host or "", utc(t.start_at), utc(t.finished_at or t.end_at),
             _short(t.note or "")) for t in db.session.scalars(query)]
    table(rows, ("id", "state", "template", "host", "start", "end", "note"))


def _short(text: str, width: int = 60) -> str:
    """A note on one table line (``hc test show`` has it whole)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


@test_group.command("show")
@click.argument("test_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="print it as JSON")
@initialised
def test_show(test_id: int, as_json: bool) -> None:
    """Describe a test: state and why, times, queues matched, job counts per queue, recent jobs, the robot's view."""
    import json

    from hcflask.cli.describe import test_facts, test_lines

    facts = test_facts(get_row(Test, "id", test_id, "test"))
    click.echo(json.dumps(facts, indent=2) if as_json else "\n".join(test_lines(facts)))


@test_group.command("cancel")
@click.argument("test_id", type=int)
@click.option("--reason", default="", help="recorded with the test")
@initialised
def test_cancel(test_id: int, reason: str) -> None:
    """Cancel a test (its pending jobs are cancelled at the next core tick)."""
    from hcflask.engine.actions import cancel_test

    cancel_test(get_row(Test, "id", test_id, "test"), actor=cli_actor(), reason=reason)
    click.echo(f"test {test_id} cancelled")


@test_group.command("move")
@click.argument("test_id", type=int)
@click.option("--host", required=True, help="the host (host_name of a hcflask service) that drives it from now on")
@initialised
def test_move(test_id: int, host: str) -> None:
    """Move a test and its jobs in flight to another host."""
    from hcflask.engine.actions import move_test

    test = move_test(get_row(Test, "id", test_id, "test"), host, actor=cli_actor())
    click.echo(f"test {test.id} is driven by {test.host} from its next tick")


@test_group.command("report")
@click.argument("test_id", type=int)
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path),
              help="write the report as one self-contained HTML file (CSS, JS and data inline)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@initialised
def test_report(test_id: int, html: Path | None, as_json: bool) -> None:
    """The report of a test: per queue success, failures, waits, run times, CPU efficiency."""
    import json

    from hcflask.web import report

    test = get_row(Test, "id", test_id, "test")
    if html is not None:
        from hcflask.web.ui.reports import render_file  # the pages' code: only for the HTML file

        with_web()  # the page's template and its filters
        try:
            html.write_text(render_file(test))
        except OSError as exc:
            raise ValidationError("html", f"{html}: {exc.strerror}") from None
        click.echo(f"wrote {html}")
        return
    data = report.build(test)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [(q["queue"], q["jobs"], q["judged"], q["succeeded"],
             "–" if q["success_rate"] is None else f"{100 * q['success_rate']:.1f}%",
             _median(q, "queue_wait"), _median(q, "run_time"), _median(q, "cpu_efficiency"),
             f"{q['core_seconds'] / 3600:.3f}") for q in data["queues"]]
    table(rows, ("queue", "jobs", "judged", "ok", "success", "wait s", "run s", "cpu eff", "core-h"))


def _median(queue: dict[str, object], key: str) -> str:
    found = queue["distributions"].get(key)  # type: ignore[attr-defined]
    return "–" if not found else f"{found['median']:.2f}"

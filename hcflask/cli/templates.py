"""``hc template`` and ``hc test``: test types as files, and their runs."""
from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from hcflask import documents
from hcflask.cli.common import get_row, initialised, table
from hcflask.extensions import db
from hcflask.models import Template, Test, ValidationError


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
@initialised
def template_add(file: Path) -> None:
    """Create a template from FILE (fails if the name exists)."""
    template = _import(file, replace=False)
    click.echo(f"template {template.name} created (id {template.id})")


@template_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@initialised
def template_import(file: Path) -> None:
    """Create or update a template from FILE (by its name)."""
    template = _import(file, replace=True)
    click.echo(f"template {template.name} saved (id {template.id})")


@template_group.command("list")
@initialised
def template_list() -> None:
    """List templates."""
    rows = [
        (t.id, t.name, "yes" if t.active else "no", ",".join(t.queues), t.jobs_in_flight,
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
    click.echo(documents.dump(get_row(Template, "name", name, "name").to_document(), fmt), nl=False)


@template_group.command("export")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="file (format from its suffix)")
@click.option("--format", "fmt", type=click.Choice(documents.FORMATS))
@initialised
def template_export(name: str, output: Path | None, fmt: str | None) -> None:
    """Write a template to a file (or stdout), ready for git and import."""
    fmt = fmt or (documents.format_of(output) if output else "yaml")
    text = documents.dump(get_row(Template, "name", name, "name").to_document(), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
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

    test = start_test(get_row(Template, "name", template, "template"), actor="cli", host=host)
    click.echo(f"test {test.id} of {template} scheduled (starts at the next core tick)")


@test_group.command("list")
@click.option("--state", help="only tests in this state")
@initialised
def test_list(state: str | None) -> None:
    """List tests, newest first."""
    query = select(Test).order_by(Test.id.desc()).limit(100)
    if state:
        query = query.where(Test.state == state)
    rows = [(t.id, t.state, t.template_name, t.host or "", str(t.start_at)[:19], str(t.end_at)[:19])
            for t in db.session.scalars(query)]
    table(rows, ("id", "state", "template", "host", "start", "end"))


@test_group.command("cancel")
@click.argument("test_id", type=int)
@click.option("--reason", default="", help="recorded with the test")
@initialised
def test_cancel(test_id: int, reason: str) -> None:
    """Cancel a test (its pending jobs are cancelled at the next core tick)."""
    from hcflask.engine.actions import cancel_test

    cancel_test(get_row(Test, "id", test_id, "test"), actor="cli", reason=reason)
    click.echo(f"test {test_id} cancelled")


@test_group.command("move")
@click.argument("test_id", type=int)
@click.option("--host", required=True, help="the host (host_name of a hcflask service) that drives it from now on")
@initialised
def test_move(test_id: int, host: str) -> None:
    """Move a test and its jobs in flight to another host."""
    from hcflask.engine.actions import move_test

    test = move_test(get_row(Test, "id", test_id, "test"), host, actor="cli")
    click.echo(f"test {test.id} is driven by {test.host} from its next tick")

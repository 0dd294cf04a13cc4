"""The fast ``hc``: what each command imports, every command still loads and answers, and the
schema check that lets a command skip Alembic.

How fast is a benchmark (``bench/bench_cli.py``, the table in docs/operations.md), not a test:
these tests check the causes instead (the modules a real ``hc`` process imported), which do
not depend on the machine's load.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from flask import Flask
from flask_migrate import downgrade
from sqlalchemy import text

from hcflask import migrations
from hcflask.cli import COMMANDS, cli, load
from hcflask.extensions import db
from hcflask.instance import at_newest_schema, schema_heads
from hcflask.models import LAZY

#: runs ``hc ARGS`` in this process, then prints the top-level packages it imported as JSON
TRACED = ("import json, sys\n"
          "from hcflask.cli import main\n"
          "try:\n    main()\n"
          "finally:\n"
          "    import gc\n"
          "    print('GC=' + json.dumps(gc.isenabled()), file=sys.stderr)\n"
          "    print('MODULES=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules}"
          " | {m for m in sys.modules if m.startswith(('hcflask', 'sqlalchemy.dialects'))})), file=sys.stderr)\n")
#: what only the web, the schema's upgrade or a webhook needs
HEAVY = {"hcflask.web.ui", "hcflask.web.api", "hcflask.web.robot", "alembic", "flask_migrate", "flask_wtf",
         "wtforms", "flask_limiter", "requests", "yaml"}
#: nor does a command that reads a SQLite instance need PostgreSQL's dialect (a partial index's
#: ``postgresql_where`` and the rollups' upsert imported it), the robot's actions and the backends
#: (the check of ``[robot.actions]`` imported them) or the writers of template files
READING_NEVER = HEAVY | {"sqlalchemy.dialects.postgresql", "hcflask.engine.notify", "hcflask.backends", "tomli_w"}
#: the models declared on first use (hcflask/models/__init__.py): users, audit, health, outbox, robot, rollups
LAZY_MODELS = {f"hcflask.models.{module}" for module in LAZY.values()}


def environment(tmp_path: Path) -> dict[str, str]:
    """A new process's environment: the instance in ``tmp_path``, this checkout's code."""
    return {"HC_INSTANCE": str(tmp_path / "inst"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def traced(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run([sys.executable, "-c", TRACED, *args], env=environment(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES="))
    return done, set(json.loads(line.removeprefix("MODULES=")))


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("-h",)])
def test_help_and_version_import_neither_flask_nor_sqlalchemy(tmp_path: Path, args: tuple[str, ...]) -> None:
    done, modules = traced(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert "flask" not in modules and "sqlalchemy" not in modules and "jinja2" not in modules, modules
    assert {m for m in modules if m.startswith("hcflask")} == {"hcflask", "hcflask.cli", "hcflask.config"}
    assert not (tmp_path / "inst").exists()  # and they touch no file
    if args == ("--help",):
        for name in COMMANDS:
            assert f"\n  {name} " in done.stdout


def test_a_reading_command_imports_neither_the_web_nor_alembic(tmp_path: Path) -> None:
    first, _ = traced(tmp_path, "queue", "list")  # creates the instance: that one upgrades the schema
    assert first.returncode == 0, first.stderr
    done, modules = traced(tmp_path, "queue", "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == ["name", "backend", "status"] and "local-flaky" in done.stdout
    assert not modules & HEAVY, modules & HEAVY
    assert "hcflask.cli.templates" not in modules and "hcflask.cli.robot" not in modules


@pytest.mark.parametrize("args", [("queue", "list"), ("test", "list"), ("test", "report", "1")])
def test_reading_commands_on_sqlite_import_only_sqlites_dialect(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Module names, not seconds: what each of the benchmark's reading commands imports
    (bench/bench_cli.py times them)."""
    assert traced(tmp_path, "test", "start", "demo")[0].returncode == 0
    done, modules = traced(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy.dialects.sqlite" in modules  # the trace sees the dialects' modules
    assert not modules & READING_NEVER, modules & READING_NEVER
    # only the models they read: the report also the metric bands (hcflask/models/band.py) of a
    # template with metrics, and neither the login nor the users for the web package it imports
    assert "hcflask.models.job" in modules and "flask_login" not in modules
    assert modules & LAZY_MODELS <= ({"hcflask.models.band"} if "report" in args else set()), modules & LAZY_MODELS


def in_process(tmp_path: Path, script: str) -> list[object]:
    """Run ``script`` in a new Python process on the instance of :func:`traced` (a new process:
    this one has declared every model long ago); it prints one JSON line, returned."""
    done = subprocess.run([sys.executable, "-c", script], env=environment(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    found: list[object] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_a_served_app_declares_every_model(tmp_path: Path) -> None:
    """Every table for the web, the scheduler, ``create_all`` and Alembic's comparison (which
    tests/test_migrations.py makes in this process, where some test declared them all anyway)."""
    assert traced(tmp_path, "queue", "list")[0].returncode == 0
    lazy = sorted(LAZY_MODELS)
    found = in_process(tmp_path, f"import json, sys\nfrom hcflask import create_app\ncreate_app()\n"
                                 f"print(json.dumps([m for m in {lazy!r} if m not in sys.modules]))")
    assert found == []


def test_a_commands_app_declares_the_models_it_writes_when_it_writes_them(tmp_path: Path) -> None:
    """A command's app starts without the rollups' models; the rollup writer (the flush hook's
    :func:`record`) declares them and writes them; deleting a queue still sees every table that
    points at it (an undeclared rollup row would have let it try the delete the row forbids)."""
    assert traced(tmp_path, "queue", "list")[0].returncode == 0
    found = in_process(tmp_path, """
import json, sys
from datetime import datetime
from sqlalchemy import select, text
from hcflask import create_app
from hcflask.extensions import db
app = create_app(web=False)
with app.app_context():
    from hcflask.models import Queue
    declared = "hcflask.models.rollup" in sys.modules
    local, flaky = (db.session.scalar(select(Queue).where(Queue.name == n)) for n in ("local", "local-flaky"))
    db.session.execute(text("INSERT INTO rollup_total (queue_id, template, succeeded, failed, cancelled, lost, "
                            "core_seconds, wall_seconds) VALUES (:q, 't', 1, 0, 0, 0, 0, 0)"), {"q": local.id})
    db.session.commit()
    from hcflask.engine.actions import delete_queue
    delete_queue(local, "cli:test")
    kept = db.session.execute(text("SELECT name FROM queue WHERE id = :q"), {"q": local.id}).scalar()
    from hcflask.engine.data.rollups import Outcome, record
    record(db.session, [Outcome(flaky.id, "demo", "succeeded", "", datetime(2026, 1, 1), datetime(2026, 1, 1, 1))])
    db.session.commit()
    total = db.session.execute(text("SELECT succeeded FROM rollup_total WHERE template = 'demo'")).scalars().all()
    print(json.dumps([declared, kept, total]))
""")
    assert found[0] is False
    assert str(found[1]).startswith("local.deleted-")  # kept: its rollup row points at it
    assert found[2] == [1]


def test_the_collector_is_back_once_the_app_is_built(tmp_path: Path) -> None:
    """``main`` turns the garbage collector off for the start-up only: a command that runs for
    long (``serve``, ``commission``) must collect again."""
    for args in (("queue", "list"), ("--help",)):
        done, _ = traced(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        enabled = next(x for x in done.stderr.splitlines() if x.startswith("GC="))
        assert enabled == ("GC=true" if args[0] == "queue" else "GC=false"), (args, enabled)


def test_the_text_report_reads_without_the_pages_and_is_not_audited(tmp_path: Path) -> None:
    """``hc test report`` only reads: it imported the pages for the HTML file it was not asked
    for, and was recorded in the audit log as an admin's write."""
    assert traced(tmp_path, "test", "start", "demo")[0].returncode == 0
    done, modules = traced(tmp_path, "test", "report", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["queue", "jobs"]
    assert not modules & HEAVY and "hcflask.web.security" not in modules, modules & HEAVY
    from hcflask import create_app
    from hcflask.models import AuditEntry

    app = create_app({"INSTANCE_PATH": tmp_path / "inst"})
    with app.app_context():
        actions = [e.action for e in db.session.scalars(db.select(AuditEntry))]
        db.session.remove()
    assert actions == ["test start"]


def test_the_html_report_adds_the_web_when_it_needs_it(tmp_path: Path) -> None:
    assert traced(tmp_path, "test", "start", "demo")[0].returncode == 0
    done, modules = traced(tmp_path, "test", "report", "1", "--html", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert "hcflask.web.ui" in modules
    page = (tmp_path / "r.html").read_text()
    assert "<html" in page and "demo" in page


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_with_the_help_hc_help_shows(name: str) -> None:
    command = load(name)
    assert command.name == name
    first = inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")
    assert COMMANDS[name][1] == first, f"hcflask/cli/__init__.py COMMANDS[{name!r}]: its help is now {first!r}"


def every_command_path() -> list[tuple[str, ...]]:
    paths = []
    for name in sorted(COMMANDS):
        command = load(name)
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in sorted(command.commands)]
    return paths


@pytest.mark.parametrize("path", every_command_path(), ids=" ".join)
def test_every_command_and_subcommand_answers_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="hc")
    assert result.exit_code == 0, result.output
    assert f"Usage: hc {' '.join(path)}" in result.output.replace("\n", " ")


def test_the_db_group_keeps_rollup_next_to_upgrade() -> None:
    """``db`` comes from cli.data, which adds ``rollup`` to cli.database's group."""
    assert {"upgrade", "current", "history", "backup", "rollup"} <= set(load("db").commands)  # type: ignore[attr-defined]


def test_the_schema_heads_read_as_text_are_alembic_heads(app: Flask) -> None:
    from alembic.script import ScriptDirectory

    folder = Path(migrations(app))
    assert schema_heads(folder / "versions") == set(ScriptDirectory(str(folder)).get_heads())


def test_a_file_the_text_reading_cannot_follow_means_upgrade(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    assert schema_heads(tmp_path) == {"b"}
    (tmp_path / "c.py").write_text("revision = compute()\ndown_revision = 'b'\n")
    assert schema_heads(tmp_path) is None


def test_a_database_behind_the_newest_schema_is_upgraded_by_the_next_command(tmp_path: Path) -> None:
    """Real SQLite, a real downgrade by one revision, then a real ``hc`` process."""
    assert traced(tmp_path, "queue", "list")[0].returncode == 0
    from hcflask import create_app

    app = create_app({"INSTANCE_PATH": tmp_path / "inst"})
    with app.app_context():
        assert at_newest_schema()
        downgrade(directory=migrations(app), revision="-1")
        assert not at_newest_schema()
        db.session.remove()
    done, modules = traced(tmp_path, "queue", "list")
    assert done.returncode == 0, done.stderr
    assert "alembic" in modules
    with app.app_context():
        assert at_newest_schema()
        assert db.session.execute(text("SELECT count(*) FROM queue")).scalar_one() == 2
        db.session.remove()


def test_the_app_of_a_command_has_no_web_until_asked(tmp_path: Path) -> None:
    from hcflask import add_web, create_app

    app = create_app({"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x"}, web=False)
    assert "ui" not in app.blueprints and "migrate" not in app.extensions
    add_web(app)
    add_web(app)  # once only
    assert {"ui", "api", "auth", "robot"} <= set(app.blueprints)
    assert os.path.basename(migrations(app)) == "migrations"

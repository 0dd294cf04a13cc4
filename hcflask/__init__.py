"""hcflask: a local HammerCloud in one Flask process.

``create_app`` builds the application and has no side effects beyond
reading configuration: no network, no threads, no sleeps.  The scheduler is
started by ``hc serve`` (see :mod:`hcflask.engine.service.scheduler`), and the
instance folder is initialised by :func:`hcflask.instance.ensure`.

Nothing heavy is imported at module level: ``hc --version`` and ``hc --help``
import this package, and every ``hc`` run is a new process that pays for what it
imports (docs/operations.md, "How fast the hc command is").
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"


def create_app(test_config: Mapping[str, Any] | None = None, *, web: bool = True) -> Flask:
    """Application factory: defaults → instance/hc.toml → HC_* → ``test_config``.

    ``web=False`` is the app of one ``hc`` command: the database and the engine, but no pages,
    API, login or CSRF, Alembic only when the schema is behind (:func:`migrations`), and the
    models other than queues, templates, tests and jobs declared on first use (:mod:`hcflask.models`).  The
    web's blueprints import most of the code, so leaving them out is most of what makes a
    command start fast; :func:`add_web` adds them to such an app when a command renders a page.
    """
    from flask import Flask
    from sqlalchemy.engine import make_url

    from hcflask import config as hc_config
    from hcflask.engine.robot.rules import check_config
    from hcflask.extensions import db

    test_config = dict(test_config or {})
    path = Path(test_config.pop("INSTANCE_PATH", None) or hc_config.instance_path())
    app = Flask(__name__, instance_path=str(path), instance_relative_config=True)
    app.config.update(hc_config.load(path))
    app.config.update(test_config)
    hc_config.check_limits(app.config)
    check_config(app.config["ROBOT"])  # the [robot] section: a typo stops the start, key named
    if not app.config["SECRET_KEY"]:
        raise hc_config.ConfigError(
            f"secret_key is not set: run 'hc init' to create {path / hc_config.CONFIG_FILE}"
        )
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"] or f"sqlite:///{path / 'hc.sqlite'}"
    # shared by the workers of one ``hc serve`` (set by its master), else this process's own
    app.config.setdefault("SERVICE_ID", os.environ.get("HC_SERVICE_ID") or f"{os.getpid()}-{uuid.uuid4().hex}")
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(
        app.config["SQLALCHEMY_DATABASE_URI"], app.config["HOST_NAME"], app.config["SERVICE_ID"]))
    app.config["JOBS_ROOT"] = app.config["PATHS_JOBS"] or str(path / "jobs")

    db.init_app(app)

    from hcflask import models  # the models register their tables (the rest on first use: web=False)
    from hcflask.models.common import use_dialect

    if web:
        models.load_all()
    use_dialect(make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name())
    from hcflask.engine.data import rollups  # noqa: F401 - the rollup writer hooks every flush
    from hcflask.engine.jobs import jobwrite  # noqa: F401 - the batch writer hooks every flush, after it

    if web:
        from hcflask import cli

        migrations(app)
        add_web(app)
        cli.register(app)  # ``flask --app hcflask <command>`` and app.test_cli_runner()
    _sqlite_pragmas(app)
    return app


def add_web(app: Flask) -> None:
    """The pages, API and login: at start for a served app, on demand for an ``hc`` command's
    (``hc test report --html`` renders the report's template, with its filters)."""
    if "hc_web" in app.extensions:
        return
    from hcflask.extensions import csrf, login_manager
    from hcflask.web import register_blueprints

    login_manager.init_app(app)
    csrf.init_app(app)
    register_blueprints(app)
    app.extensions["hc_web"] = True


def migrations(app: Flask) -> str:
    """Flask-Migrate (and so Alembic) on ``app``, once; returns the migrations folder.

    Alembic takes a third of a command's start-up, and a command on a database at the newest
    schema never needs it (:func:`hcflask.instance.ensure` checks that without Alembic)."""
    if "migrate" not in app.extensions:
        from hcflask import models
        from hcflask.extensions import db, migrate

        models.load_all()  # Alembic compares the schema with every table of the models

        migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    return str(app.extensions["migrate"].directory)


def _engine_options(uri: str, host: str, service: str) -> dict[str, Any]:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    from hcflask.engine.service.corelease import application_name

    # a paused host (SIGSTOP, a frozen VM) must not hold row locks that keep another host from
    # adopting its tests: PostgreSQL ends a session idle inside a transaction after 30 s, and a
    # host taking over the core role ends a dead core's sessions at once, found by their name
    return {"pool_pre_ping": True, "connect_args": {
        "options": "-c idle_in_transaction_session_timeout=30000",
        "application_name": application_name(host, service)}}


def _sqlite_pragmas(app: Flask) -> None:
    """WAL, a busy timeout and foreign keys, on every SQLite connection."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    from hcflask.extensions import db

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _migrations_dir() -> Path:
    """Installed: ``hcflask/migrations``; in a checkout: the top-level ``migrations/``."""
    here = Path(__file__).resolve().parent
    packaged = here / "migrations"
    return packaged if packaged.is_dir() else here.parent / "migrations"

"""The migrations build exactly the schema the models describe."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from hcflask.extensions import db
from tests.conftest import make_app


def test_models_and_migrations_agree(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models changed without a migration (run 'hc db migrate'): {diff}"


def test_the_same_on_postgres(postgres: Any, tmp_path: Path) -> None:
    """PostgreSQL takes other paths in some migrations (constraints added in place on SQLite)."""
    app = make_app(tmp_path / "instance", DATABASE_URL=postgres.create_database())
    try:
        test_models_and_migrations_agree(app)
    finally:
        with app.app_context():
            db.engine.dispose()

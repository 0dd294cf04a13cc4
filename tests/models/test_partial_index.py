"""A partial index (:func:`hcflask.models.common.partial_index`) is partial on both databases,
made by the migrations or by ``metadata.create_all``: its WHERE clause reaches the model's index
in ``create_app``, not at import (naming ``postgresql_where`` in the model imported PostgreSQL's
dialect in every ``hc`` command on SQLite).  Real SQLite and a real PostgreSQL."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import text

from hcflask import create_app
from hcflask.extensions import db
from tests.conftest import make_app

INDEX = "ix_job_workdir_ended"


def fresh_app(instance: Path, **config: Any) -> Flask:
    """An app whose tables come from the models (``create_all``), not from the migrations."""
    instance.mkdir()
    app = create_app({"INSTANCE_PATH": instance, "SECRET_KEY": "x", "DEMO": False, **config})
    with app.app_context():
        db.create_all()
    return app


def index_sql(app: Flask) -> str:
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
        found = db.session.execute(text(query), {"name": INDEX}).scalar_one()
        db.session.remove()
    return str(found)


def test_on_sqlite_the_models_make_the_index_the_migration_made(app: Flask, tmp_path: Path) -> None:
    migrated = index_sql(app)
    assert "WHERE workdir != ''" in migrated
    assert index_sql(fresh_app(tmp_path / "fresh")) == migrated


def test_the_same_on_postgres(postgres: Any, tmp_path: Path) -> None:
    migrated_app = make_app(tmp_path / "instance", DATABASE_URL=postgres.create_database())
    fresh = fresh_app(tmp_path / "fresh", DATABASE_URL=postgres.create_database())
    try:
        migrated = index_sql(migrated_app)
        assert "WHERE (workdir <> ''::text)" in migrated
        assert index_sql(fresh) == migrated
    finally:
        for each in (migrated_app, fresh):
            with each.app_context():
                db.engine.dispose()


def test_an_index_of_a_model_declared_after_the_app_gets_its_clause_too() -> None:
    """A command's app declares some models on first use (hcflask/models/__init__.py), after
    ``create_app`` gave the partial indexes their dialect: such a model's index gets it at once."""
    from hcflask.models.common import partial_index, use_dialect

    use_dialect("sqlite")
    index = partial_index("ix_later_rows", "ended_at", where="workdir != ''")
    assert str(index.dialect_kwargs["sqlite_where"]) == "workdir != ''"

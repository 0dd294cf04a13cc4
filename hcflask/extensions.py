"""Extensions, created unbound here and bound to the app in ``create_app``.

The database is made at import; the others (Alembic through Flask-Migrate, the login, CSRF and
the rate limiter) on first use, so an ``hc`` command that touches neither the schema nor the web
never imports them (``from hcflask.extensions import csrf`` still works: see ``__getattr__``).
"""
from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import current_app, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, registry

from hcflask.times import UTCDateTime

# Named constraints, so Alembic's batch mode can alter them on SQLite.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    # every datetime column goes through the one UTC boundary
    registry = registry(metadata=MetaData(naming_convention=NAMING), type_annotation_map={datetime: UTCDateTime})


db = SQLAlchemy(model_class=Base)
# Models subclass ``Model``; type checkers see the typed declarative base.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

if TYPE_CHECKING:
    from flask_limiter import Limiter
    from flask_login import LoginManager
    from flask_migrate import Migrate
    from flask_wtf import CSRFProtect

    migrate: Migrate
    login_manager: LoginManager
    csrf: CSRFProtect
    limiter: Limiter


def _client_key() -> str:
    """Throttling key: the instance and the client address (one service: memory storage)."""
    return f"{current_app.config['INSTANCE_NAME']}:{request.remote_addr or '-'}"


_making = threading.Lock()


def _make(name: str) -> Any:
    if name == "migrate":
        from flask_migrate import Migrate

        return Migrate()
    if name == "login_manager":
        from flask_login import LoginManager

        return LoginManager()
    if name == "csrf":
        from flask_wtf import CSRFProtect

        return CSRFProtect()
    from flask_limiter import Limiter

    return Limiter(key_func=_client_key, storage_uri="memory://", default_limits=[])


def __getattr__(name: str) -> Any:
    """``migrate``, ``login_manager``, ``csrf`` and ``limiter``: made once, on first use (PEP 562)."""
    if name not in ("migrate", "login_manager", "csrf", "limiter"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _making:  # two threads of a worker asking at once get the same object
        if name not in globals():
            globals()[name] = _make(name)
    return globals()[name]

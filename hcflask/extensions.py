"""Extensions, created unbound here and bound to the app in ``create_app``."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask import current_app, request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
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
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


def _client_key() -> str:
    """Throttling key: the instance and the client address (one service: memory storage)."""
    return f"{current_app.config['INSTANCE_NAME']}:{request.remote_addr or '-'}"


limiter = Limiter(key_func=_client_key, storage_uri="memory://", default_limits=[])

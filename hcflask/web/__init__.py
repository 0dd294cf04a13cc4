"""The web: pages (ui), the JSON API (api) and login (auth), plus /healthz.

Importing this package imports neither the login nor the users' model: ``hc test report``
imports :mod:`hcflask.web.report` (and so this package) without the pages.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, request
from werkzeug.exceptions import Unauthorized

from hcflask.extensions import db

if TYPE_CHECKING:
    from hcflask.models import User


def register_blueprints(app: Flask) -> None:
    from hcflask.extensions import login_manager
    from hcflask.web import filters, security
    from hcflask.web.api import bp as api_bp
    from hcflask.web.auth import bp as auth_bp
    from hcflask.web.auth import setup as auth_setup
    from hcflask.web.health import healthz
    from hcflask.web.robot import bp as robot_bp  # before api_bp is registered: it adds /api/v1/robot/*
    from hcflask.web.ui import bp as ui_bp

    security.setup(app)
    auth_setup(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(ui_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(robot_bp)
    filters.register(app)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.before_request(_require_login_for_reading)
    app.after_request(_security_headers)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to do that."
    login_manager.user_loader(_load_user)


def _load_user(user_id: str) -> User | None:
    """A disabled user's session ends at their next request."""
    from hcflask.models import User

    user = db.session.get(User, int(user_id))
    return user if user is not None and not user.disabled else None


def _require_login_for_reading() -> Any:
    """``read_requires_login``: every page but login, static and health needs a user
    (``/healthz`` then tells an anonymous caller its status word only).

    The API checks tokens itself; ``/metrics`` takes an API token too, so
    Prometheus can scrape a closed instance (``authorization`` in its config).
    """
    from flask import current_app, redirect, url_for
    from flask_login import current_user

    from hcflask.web.api.auth import request_caller

    if not current_app.config["READ_REQUIRES_LOGIN"] or current_user.is_authenticated:
        return None
    if request.endpoint in ("auth.login", "static", "healthz") or request.blueprint == "api":
        return None
    if request.endpoint == "robot.metrics":
        if request_caller() is None:
            raise Unauthorized("Authorization: this instance needs an API token to read /metrics")
        return None
    return redirect(url_for("auth.login", next=request.full_path))


def warm(app: Flask) -> None:
    """Make a fresh worker's first pages as fast as its later ones: set up the ORM
    mappers, compile every template and sum the default month of /overview now
    (a first /overview otherwise pays ~150 ms for the three), then move what was
    built so far out of the garbage collector's sight (``gc.freeze``), so its
    full collections stay short.  A database that does not answer yet only
    leaves the sums to the first page."""
    import gc
    import logging

    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import configure_mappers

    from hcflask.web import cost
    from hcflask.web.robot import stats

    configure_mappers()
    for name in app.jinja_env.list_templates(filter_func=lambda n: n.endswith(".html")):
        app.jinja_env.get_template(name)
    with app.app_context():
        try:
            start, end = stats.last_days()  # the default /overview month, summed into this process's cache
            stats.jobs_per_day(start, end)
            stats.heatmap(start, end)
            stats.availability(start, end)
            cost.by_queue_template(start, end)
        except SQLAlchemyError as exc:
            logging.getLogger("hcflask.web").warning("report sums not prepared at start: %s", exc)
        finally:
            db.session.remove()
    gc.collect()
    gc.freeze()


def _security_headers(response: Any) -> Any:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'",
    )
    return response

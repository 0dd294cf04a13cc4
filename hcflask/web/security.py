"""What guards the web as a whole: session cookies, login throttling, the
audit log of every write attempt, ids bounded to 64 bits, and JSON 404/405 for the API.

Login throttling uses Flask-Limiter with memory storage: counts live in the
one service process (``hc serve`` runs the web in gunicorn workers, each
with its own counts, so the effective limit is per worker); only failed
logins count.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request, session
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from hcflask.extensions import db, limiter
from hcflask.models import AuditEntry, ValidationError
from hcflask.web.queries import INT64_MAX

WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: writes that are not an admin changing something
NOT_AUDITED = {"auth.login", "auth.logout"}


class Int64Converter(IntegerConverter):
    """``<int:...>`` that matches only ids a database column can hold (others: 404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", INT64_MAX)
        super().__init__(map, *args, **kwargs)


def setup(app: Flask) -> None:
    """Before the blueprints are registered (the converter applies to their rules)."""
    app.url_map.converters["int"] = Int64Converter
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    secure = bool(app.config["SERVER_SECURE_COOKIES"])
    app.config["SESSION_COOKIE_SECURE"] = app.config["REMEMBER_COOKIE_SECURE"] = secure
    app.config["SESSION_COOKIE_HTTPONLY"] = app.config["REMEMBER_COOKIE_HTTPONLY"] = True
    limiter.init_app(app)
    app.after_request(_audit)
    app.register_error_handler(404, _api_json)
    app.register_error_handler(405, _api_json)
    app.register_error_handler(ValidationError, _invalid_page)


def _invalid_page(exc: ValidationError) -> Any:
    """A page's bad query parameter: a 400 naming it (the API answers JSON itself)."""
    return render_template("error.html", code=exc.status, title="Bad request", message=str(exc)), exc.status


def actor() -> str:
    """Who is writing, by the one name they have everywhere: the token's or the session's
    user name, or ``anonymous``."""
    if getattr(g, "api_user", None) is not None:
        return str(g.api_user.username)
    if current_user.is_authenticated:
        return str(current_user.username)
    return "anonymous"


def record(who: str, action: str, target: str = "", status: int = 0, remote: str = "", via: str = "",
           reason: str = "") -> None:
    """Add one audit entry (committed by the caller)."""
    db.session.add(AuditEntry(actor=who[:128], action=action[:255], target=target, status=status,
                              remote_addr=remote[:64], via=via, reason=reason[:2000]))


def _reason(response: Any) -> str:
    """Why a write did not happen: the permission check's word, the API's error, or the page's error flash."""
    if getattr(g, "audit_reason", ""):
        return str(g.audit_reason)
    if response.status_code >= 400 and response.is_json:
        error = (response.get_json(silent=True) or {}).get("error") or {}
        return str(error.get("message") or "")
    flashes = [message for category, message in session.get("_flashes", []) if category == "error"]
    if flashes:
        return str(flashes[-1])
    if response.status_code == 400:
        return "the form expired or was not valid"
    return ""


def _audit(response: Any) -> Any:
    """Every write attempt on the pages and the API, allowed or refused, whoever sends it."""
    if request.method not in WRITES or request.endpoint is None or request.endpoint in NOT_AUDITED:
        return response  # reads, sign-in itself, and paths that are no page at all
    db.session.rollback()  # anything a failed view left uncommitted is discarded at teardown anyway
    via = "api" if request.path.startswith("/api/") else "ui"
    record(actor(), f"{request.method} {request.path}", request.view_args and str(request.view_args) or "",
           response.status_code, request.remote_addr or "", via, _reason(response))
    db.session.commit()
    return response


def _api_json(exc: HTTPException) -> Any:
    """Routing errors under /api/ as JSON (the API's own views have their handler); elsewhere the page."""
    if not request.path.startswith("/api/"):
        from hcflask.web.ui.errors import http_error

        return http_error(exc)
    body: dict[str, Any] = {"error": {"status": exc.code, "field": None, "reason": exc.description,
                      "message": f"{exc.name}: {exc.description}", "errors": []}}
    response = jsonify(body)
    response.status_code = exc.code or 500
    response.headers.update({k: v for k, v in exc.get_headers() if k == "Allow"})
    return response

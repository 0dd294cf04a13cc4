"""Error pages with the site's navigation (404, 403, 500, an expired form), and
the favicon.  Under /api/ errors stay JSON (see :mod:`hcflask.web.api.routes`)."""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from hcflask.extensions import db
from hcflask.web.ui import bp

log = logging.getLogger("hcflask.web")

MESSAGES = {
    403: "Admins only.",
    404: "No such page or object.",
    405: "This page does not take that kind of request.",
    500: "Something went wrong on the server; it is in the service's log. Try again, or go back.",
}


def _page(code: int, title: str, message: str) -> Any:
    if request.path.startswith("/api/"):
        return jsonify({"error": {"status": code, "field": None, "reason": message,
                                  "message": f"{title}: {message}"}}), code
    return render_template("error.html", code=code, title=title, message=message), code


@bp.app_errorhandler(CSRFError)
def csrf_error(exc: CSRFError) -> Any:
    return _page(400, "The form expired", f"{exc.description} Go back, reload the page and send it again.")


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    if code < 400:
        return exc
    return _page(code, exc.name, MESSAGES.get(code) or exc.description or exc.name)


@bp.app_errorhandler(Exception)
def server_error(exc: Exception) -> Any:
    """Anything unexpected: logged with its traceback, a page with the navigation for the user."""
    propagate = current_app.config["PROPAGATE_EXCEPTIONS"]
    if propagate or (propagate is None and (current_app.testing or current_app.debug)):
        raise exc
    log.exception("error on %s %s", request.method, request.path)
    db.session.rollback()  # the page itself reads the session (the logged-in user)
    return _page(500, "Internal server error", MESSAGES[500])


@bp.route("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for /favicon.ico on every page; without it each page logs a 404."""
    return current_app.send_static_file("favicon.svg")

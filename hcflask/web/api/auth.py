"""Token checks for the API (and /metrics).

A token's scope decides what it may do: ``read`` reads (dashboards,
Prometheus, and the API when ``read_requires_login``); ``admin`` also
writes.  Only an ``admin`` token of an admin user may write: a write can
create a ``local`` queue, which runs any script on the service host.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden, Unauthorized

from hcflask.extensions import db
from hcflask.models import ApiToken, utcnow

F = TypeVar("F", bound=Callable[..., Any])


def request_token() -> ApiToken | None:
    """The request's valid bearer token, None without one, 401 for a bad, revoked or expired one."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization: expected 'Bearer <token>'")
    row = ApiToken.lookup(token.strip())
    if row is None:
        raise Unauthorized("Authorization: unknown, revoked or expired token")
    row.last_used_at = utcnow()
    db.session.commit()
    return row


def token_user() -> Any:
    """The user of the request's bearer token (any scope), or None."""
    row = request_token()
    return row.user if row is not None else None


def token_required(view: F) -> F:
    """Writes: a valid ``admin``-scope token of an admin."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        row = request_token()
        if row is None:
            raise Unauthorized("Authorization: an API token is required for writes (hc token create)")
        if row.scope != "admin" or not row.user.is_admin:
            raise Forbidden("this token's scope is read: writes need an admin token")
        g.api_user = row.user
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_read_access() -> None:
    """With ``read_requires_login``, reads need a token or a logged-in session."""
    if current_app.config["READ_REQUIRES_LOGIN"] and not current_user.is_authenticated and token_user() is None:
        raise Unauthorized("Authorization: reading requires a login or an API token on this instance")


def admin_reader(view: F) -> F:
    """Admin-only reads (the audit log): an admin's token of any scope, or an admin's session."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        row = request_token()
        user = row.user if row is not None else (current_user if current_user.is_authenticated else None)
        if user is None:
            raise Unauthorized("Authorization: an admin's login or API token is needed")
        if not user.is_admin:
            raise Forbidden("admins only")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

"""Token checks for the API."""
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


def token_user() -> Any:
    """The user of the request's bearer token, or None (401 for a bad token)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization: expected 'Bearer <token>'")
    row = ApiToken.lookup(token.strip())
    if row is None:
        raise Unauthorized("Authorization: unknown or revoked token")
    row.last_used_at = utcnow()
    db.session.commit()
    return row.user


def token_required(view: F) -> F:
    """Writes: a valid token of an admin."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = token_user()
        if user is None:
            raise Unauthorized("Authorization: an API token is required for writes (hc token create)")
        if not user.is_admin:
            raise Forbidden("admins only")
        g.api_user = user
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_read_access() -> None:
    """With ``read_requires_login``, reads need a token or a logged-in session."""
    if current_app.config["READ_REQUIRES_LOGIN"] and not current_user.is_authenticated and token_user() is None:
        raise Unauthorized("Authorization: reading requires a login or an API token on this instance")

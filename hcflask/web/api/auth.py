"""Who is calling the API (and /metrics), and may they.

Two kinds of bearer token: hcflask's own (``hct_...``, ``hc token create``),
whose scope (``read``, ``operate``, ``admin``) caps its user's role; and an
access token (a JWT) from the site's OIDC issuer, checked by
:class:`hcflask.access.oidc.Issuer` (signature by the issuer's keys, ``iss``,
``aud``, ``exp``, ``nbf``), whose role comes from its groups by the same rules
as a browser sign-in.  Either way the permission table decides.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden, Unauthorized

from hcflask.access import PERMISSIONS, allowed, cap
from hcflask.access.accounts import external_user
from hcflask.access.oidc import Rejected, identity
from hcflask.extensions import db
from hcflask.models import ApiToken, User, ValidationError, utcnow
from hcflask.models.user import TOKEN_PREFIX

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    user: User
    #: the role for writes: the user's, capped by an hcflask token's scope
    role: str


def _refuse(reason: str) -> Unauthorized:
    g.audit_reason = reason
    return Unauthorized(f"Authorization: {reason}")


def _issuer_token(token: str) -> Caller:
    from hcflask.web.auth import configured

    issuer = configured("issuer")
    if issuer is None:
        raise _refuse("unknown, revoked or expired token")
    try:
        claims = issuer.verify(token)
        username, role = identity(issuer.settings, claims)
        user = external_user(username, "oidc", role)
    except Rejected as exc:
        raise _refuse(str(exc)) from None
    except ValidationError as exc:
        db.session.rollback()
        raise _refuse(exc.reason) from None
    return Caller(user, user.role)


def request_caller() -> Caller | None:
    """The request's bearer token's caller, None without a token, 401 for a bad one."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _refuse("expected 'Bearer <token>'")
    if not token.startswith(TOKEN_PREFIX):
        caller = _issuer_token(token)
    else:
        row = ApiToken.lookup(token)
        if row is None or row.user.disabled:
            raise _refuse("unknown, revoked or expired token")
        row.last_used_at = utcnow()
        db.session.commit()
        caller = Caller(row.user, cap(row.user.role, row.scope))
    g.api_user = caller.user
    return caller


def token_user() -> Any:
    """The user of the request's bearer token (any scope), or None."""
    caller = request_caller()
    return caller.user if caller is not None else None


def permission_required(action: str) -> Callable[[F], F]:
    """Writes: a bearer token whose (capped) role may do ``action`` by the permission table."""
    if action not in PERMISSIONS:
        raise KeyError(f"{action}: not in the permission table")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = request_caller()
            if caller is None:
                raise _refuse("a bearer token is required for writes (hc token create, or the site's issuer)")
            if not allowed(caller.role, action):
                reason = f"role {caller.role} may not {action}"
                if caller.role != caller.user.role:
                    reason += f" (this token's scope caps {caller.user.username}'s role {caller.user.role})"
                g.audit_reason = reason
                raise Forbidden(reason)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def check_read_access() -> None:
    """With ``read_requires_login``, reads need a token or a logged-in session."""
    if current_app.config["READ_REQUIRES_LOGIN"] and not current_user.is_authenticated and token_user() is None:
        raise Unauthorized("Authorization: reading requires a login or an API token on this instance")


def reader_required(action: str) -> Callable[[F], F]:
    """Reads limited by role (the audit log): the user's own role, whatever the token's scope."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = request_caller()
            user = caller.user if caller is not None else (current_user if current_user.is_authenticated else None)
            if user is None:
                raise Unauthorized(f"Authorization: a login or API token that may {action} is needed")
            if not user.may(action):
                raise Forbidden(f"role {user.role} may not {action}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

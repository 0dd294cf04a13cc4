"""Sign-in (local accounts, the site's LDAP, the site's OIDC issuer) and the
check that guards every write page: :func:`permission_required`, which asks
the one permission table (:data:`hcflask.access.PERMISSIONS`)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from hcflask.access import PERMISSIONS, settings
from hcflask.access.ldap import Unavailable, authenticate
from hcflask.access.oidc import Issuer
from hcflask.extensions import db, limiter, login_manager
from hcflask.models import User, ValidationError

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "hc_auth"


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def setup(app: Flask) -> None:
    """Read ``[auth]`` (a mistake stops the start, naming the key) and register the OIDC client."""
    site_oidc, site_ldap = settings.load(app.config)
    app.extensions[EXTENSION] = {"oidc": site_oidc, "ldap": site_ldap,
                                 "issuer": Issuer(site_oidc) if site_oidc else None}
    if site_oidc is not None:
        from hcflask.web.auth.oidc import register_client

        register_client(app, site_oidc)


def configured(name: str) -> Any:
    """``oidc`` / ``ldap`` settings, or the ``issuer`` (None when not configured)."""
    return current_app.extensions[EXTENSION][name]


def permission_required(action: str) -> Callable[[F], F]:
    """A signed-in user whose role may do ``action``: anonymous goes to the login page, others get 403."""
    if action not in PERMISSIONS:
        raise KeyError(f"{action}: not in the permission table")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                g.audit_reason = "not signed in"
                return login_manager.unauthorized()
            if not current_user.may(action):
                g.audit_reason = f"role {current_user.role} may not {action}"
                abort(403, description=f"Your role ({current_user.role}) may not do this ({action}).")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot redirect elsewhere."""
    if target and urlsplit(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui.home")


def _failed(response: Any) -> bool:
    return response.status_code != 302


def _check_password(username: str, password: str) -> User | None:
    """A local account with this password, else the LDAP directory's answer (Unavailable if it is down)."""
    from hcflask.access.accounts import external_user

    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None and user.source == "local":
        return user if user.check_password(password) and user.is_active else None
    ldap = configured("ldap")
    if ldap is None or (user is not None and user.source != "ldap"):
        return None
    person = authenticate(ldap, username, password)
    if person is None:
        return None
    return external_user(person.username, "ldap", person.role)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SERVER_LOGIN_LIMIT"], methods=["POST"], deduct_when=_failed)
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = _check_password(form.username.data or "", form.password.data or "")
        except Unavailable as exc:
            flash(f"{exc}. Local accounts still sign in.", "error")
        except ValidationError as exc:
            flash(f"Sign-in refused: {exc.reason}.", "error")
        else:
            if user is not None:
                login_user(user)
                return redirect(_safe_next(request.args.get("next")))
            flash("Unknown user or wrong password.", "error")
    return render_template("login.html", form=form, oidc=configured("oidc"), ldap=configured("ldap"),
                           next=request.args.get("next", "")), 200 if request.method == "GET" else 401


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the hcflask session and, for an OIDC sign-in, the issuer's (its end-session page)."""
    id_token = session.pop("oidc_id_token", None)
    logout_user()
    if id_token and configured("oidc") is not None:
        from hcflask.web.auth.oidc import end_session_url

        target = end_session_url(id_token)
        if target:
            return redirect(target)
    return redirect(url_for("ui.home"))


from hcflask.web.auth import account, admin, oidc  # noqa: E402,F401 - registers their pages

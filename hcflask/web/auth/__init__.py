"""Login for admins (Flask-Login) and the checks that guard writes."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from hcflask.extensions import db, limiter
from hcflask.models import User

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def admin_required(view: F) -> F:
    """A logged-in admin, or a redirect to the login page."""

    @login_required
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot redirect elsewhere."""
    if target and urlsplit(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui.home")


def _failed(response: Any) -> bool:
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SERVER_LOGIN_LIMIT"], methods=["POST"], deduct_when=_failed)
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.username == form.username.data))
        if user is not None and user.check_password(form.password.data or ""):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown user or wrong password.", "error")
    return render_template("login.html", form=form), 200 if request.method == "GET" else 401


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    logout_user()
    return redirect(url_for("ui.home"))

from hcflask.web.auth import admin  # noqa: E402,F401 - registers the admin pages

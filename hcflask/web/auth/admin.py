"""Admin pages of the auth blueprint: API tokens (list, create, revoke with a
confirmation) and the audit log.  Every write here is logged by the audit hook."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField

from hcflask.engine.tokens import parse_lifetime, revoke
from hcflask.extensions import db
from hcflask.models import ApiToken, AuditEntry, User, ValidationError, utcnow
from hcflask.models.user import SCOPES
from hcflask.web.auth import admin_required, bp
from hcflask.web.queries import int_arg


class TokenForm(FlaskForm):
    name = StringField("What it is for", description="e.g. grafana, ci")
    scope = SelectField("Scope", choices=list(SCOPES), default="read",
                        description="read: dashboards, /metrics, API reads; admin: also every write")
    expires = StringField("Expires after", default="90d", description="e.g. 90d, 12h; empty: never")


class ConfirmForm(FlaskForm):
    """A button: nothing but the CSRF token."""


def _tokens_page(form: TokenForm, new_token: str | None = None, status: int = 200) -> Any:
    rows = list(db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))
    return render_template("tokens.html", tokens=rows, form=form, new_token=new_token), status


@bp.route("/tokens", methods=["GET", "POST"])
@admin_required
def tokens() -> Any:
    """List every token; create one for yourself (shown once, here)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _tokens_page(form, status=400 if request.method == "POST" else 200)
    name = (form.name.data or "").strip()
    try:
        if len(name) > 64:
            raise ValidationError("name", "at most 64 characters")
        if form.scope.data not in SCOPES:
            raise ValidationError("scope", "read or admin")
        expires = (form.expires.data or "").strip()
        expires_at = utcnow() + parse_lifetime(expires) if expires else None
    except ValidationError as exc:
        getattr(form, exc.field).errors = [exc.reason]
        return _tokens_page(form, status=400)
    user = db.session.get_one(User, current_user.id)
    _, token = ApiToken.issue(user, name, form.scope.data or "read", expires_at)
    db.session.commit()
    return _tokens_page(TokenForm(formdata=None), new_token=token)


@bp.route("/tokens/<int:token_id>/revoke", methods=["GET", "POST"])
@admin_required
def token_revoke(token_id: int) -> Any:
    """GET asks for confirmation; POST revokes."""
    row = db.get_or_404(ApiToken, token_id)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            revoke(row)
        except ValidationError as exc:
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(f"Token {row.id} ({row.name or 'unnamed'}) of {row.user.username} revoked.", "ok")
        return redirect(url_for("auth.tokens"))
    return render_template("token_revoke.html", token=row, form=form)


@bp.route("/audit")
@admin_required
def audit() -> Any:
    limit = int_arg(request.args, "limit", 200, high=1000)
    rows = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
    return render_template("audit.html", entries=rows)

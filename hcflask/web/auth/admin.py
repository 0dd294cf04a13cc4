"""Token and audit pages of the auth blueprint: API tokens (one's own; an admin
sees and revokes everyone's), create, revoke with a confirmation; the audit
log.  Every write here is logged by the audit hook."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField

from hcflask.access import SCOPE_ROLE, SCOPES, rank
from hcflask.engine.tokens import parse_lifetime, revoke
from hcflask.extensions import db
from hcflask.models import ApiToken, AuditEntry, User, ValidationError, utcnow
from hcflask.web.auth import bp, permission_required
from hcflask.web.queries import int_arg


class TokenForm(FlaskForm):
    name = StringField("What it is for", description="e.g. grafana, ci")
    scope = SelectField("Scope", choices=list(SCOPES), default="read",
                        description="read: reads only; operate: an operator's writes; admin: every write "
                                    "(never more than your role)")
    expires = StringField("Expires after", default="90d", description="e.g. 90d, 12h; empty: never")


class ConfirmForm(FlaskForm):
    """A button: nothing but the CSRF token."""


def _tokens_page(form: TokenForm, new_token: str | None = None, status: int = 200) -> Any:
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if not current_user.may("user.manage"):
        query = query.where(ApiToken.user_id == current_user.id)
    form.scope.choices = [s for s in SCOPES if rank(SCOPE_ROLE[s]) <= rank(current_user.role)]
    rows = list(db.session.scalars(query))
    return render_template("tokens.html", tokens=rows, form=form, new_token=new_token), status


@bp.route("/tokens", methods=["GET", "POST"])
@permission_required("account")
def tokens() -> Any:
    """List every token; create one for yourself (shown once, here)."""
    form = TokenForm()
    form.scope.choices = list(SCOPES)  # checked against the role below, with a message naming it
    if not form.validate_on_submit():
        return _tokens_page(form, status=400 if request.method == "POST" else 200)
    name = (form.name.data or "").strip()
    try:
        if len(name) > 64:
            raise ValidationError("name", "at most 64 characters")
        if form.scope.data not in SCOPES:
            raise ValidationError("scope", "read, operate or admin")
        if rank(SCOPE_ROLE[form.scope.data]) > rank(current_user.role):
            raise ValidationError("scope", f"more than your role ({current_user.role}) allows")
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
@permission_required("account")
def token_revoke(token_id: int) -> Any:
    """GET asks for confirmation; POST revokes."""
    row = db.get_or_404(ApiToken, token_id)
    if row.user_id != current_user.id and not current_user.may("user.manage"):
        abort(403, description="only an admin revokes another user's token")
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
@permission_required("audit.read")
def audit() -> Any:
    limit = int_arg(request.args, "limit", 200, high=1000)
    rows = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
    return render_template("audit.html", entries=rows)

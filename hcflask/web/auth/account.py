"""``/account``: one's own password (local accounts; the site's accounts change
theirs at the site) and the time zone the pages show times in."""
from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField

from hcflask.extensions import db
from hcflask.models import User
from hcflask.web.auth import bp, permission_required

MIN_PASSWORD = 8


def zones() -> list[str]:
    return ["UTC", *sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))]


class PasswordForm(FlaskForm):
    current = PasswordField("Current password")
    new = PasswordField("New password", description=f"at least {MIN_PASSWORD} characters")
    repeat = PasswordField("New password again")


class ZoneForm(FlaskForm):
    timezone = SelectField("Display time zone", description="pages and plot axes; the API stays UTC")


def _page(password: PasswordForm, zone: ZoneForm, status: int = 200) -> Any:
    zone.timezone.choices = zones()
    return render_template("account.html", password=password, zone=zone), status


@bp.route("/account", methods=["GET"])
@permission_required("account")
def account() -> Any:
    zone = ZoneForm(timezone=current_user.timezone or "UTC")
    return _page(PasswordForm(), zone)


@bp.route("/account/password", methods=["POST"])
@permission_required("account")
def change_password() -> Any:
    form = PasswordForm()
    user = db.session.get_one(User, current_user.id)
    if not form.validate_on_submit():
        form.current.errors = ["the form expired; try again"]
    elif user.source != "local":
        form.current.errors = [f"a {user.source} account changes its password at the site, not here"]
    elif not user.check_password(form.current.data or ""):
        form.current.errors = ["not your current password"]
    elif len(form.new.data or "") < MIN_PASSWORD:
        form.new.errors = [f"at least {MIN_PASSWORD} characters"]
    elif form.new.data != form.repeat.data:
        form.repeat.errors = ["does not match the new password"]
    else:
        user.set_password(form.new.data or "")
        db.session.commit()
        flash("Password changed.", "ok")
        return redirect(url_for("auth.account"))
    g.audit_reason = "; ".join(f"{f.name}: {e}" for f in form for e in f.errors if f.name != "csrf_token")
    return _page(form, ZoneForm(formdata=None, timezone=user.timezone or "UTC"), 400)


@bp.route("/account/timezone", methods=["POST"])
@permission_required("account")
def set_timezone() -> Any:
    form = ZoneForm()
    form.timezone.choices = zones()
    if not form.validate_on_submit():
        g.audit_reason = "timezone: " + "; ".join(form.timezone.errors or ["the form expired"])
        return _page(PasswordForm(formdata=None), form, 400)
    user = db.session.get_one(User, current_user.id)
    user.timezone = "" if form.timezone.data == "UTC" else form.timezone.data or ""
    db.session.commit()
    flash(f"Times are shown in {form.timezone.data}.", "ok")
    return redirect(request.referrer if request.referrer and request.referrer.startswith(request.host_url)
                    else url_for("auth.account"))

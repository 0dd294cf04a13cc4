"""The admin's pages: queues (new, edit, delete), template deletion, users,
and the API documentation.  Every write calls one engine action."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from hcflask.backends import BACKEND_NAMES, OptionError, backend_class
from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Queue, Template, User, ValidationError
from hcflask.web.auth import permission_required
from hcflask.web.ui import bp
from hcflask.web.ui.forms import ActionForm, QueueForm, ShowsErrors
from hcflask.web.ui.routes import _actor, _render


def saved(form: ShowsErrors, save: Callable[[], Any], message: str, endpoint: str, **args: Callable[[Any], Any]) -> Any:
    """Run one engine action for a form: its ValidationError goes next to the field it
    names (None: show the form again), else flash ``message`` and go to ``endpoint``."""
    try:
        row = save()
    except ValidationError as exc:
        db.session.rollback()
        form.add_error(exc)
        return None
    flash(message.format(row=row), "ok")
    return redirect(url_for(endpoint, **{key: get(row) for key, get in args.items()}))


def backends_here() -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The backends usable in this process with their options, and why the others are not."""
    usable: dict[str, dict[str, str]] = {}
    unusable: dict[str, str] = {}
    for name in BACKEND_NAMES:
        try:
            usable[name] = dict(backend_class(name).options)
        except OptionError as exc:
            unusable[name] = exc.reason
    return usable, unusable


def _queue_form(form: QueueForm, queue: Queue | None) -> Any:
    usable, unusable = backends_here()
    if queue is None:
        form.backend.choices = list(usable)
    else:
        form.backend.choices = [queue.backend]
    status = 400 if form.errors else 200
    return _render("queue_form.html", form=form, queue=queue, usable=usable, unusable=unusable), status


@bp.route("/queues/new", methods=["GET", "POST"])
@permission_required("queue.edit")
def new_queue() -> Any:
    form = QueueForm()
    form.backend.choices = list(backends_here()[0])
    if form.validate_on_submit():
        done = saved(form, lambda: actions.create_queue(
            form.name.data or "", form.backend.data or "", form.options_dict(), form.description.data or "",
            bool(form.autoexclusion.data)), "Queue {row.name} created.", "ui.queue", name=lambda q: q.name)
        if done is not None:
            return done
    return _queue_form(form, None)


def _live_queue(name: str) -> Queue:
    return db.first_or_404(Queue.live().where(Queue.name == name))


def _save_edit(queue: Queue, name: str, options: dict[str, Any], description: str, autoexclusion: bool,
               actor: str) -> Queue:
    """The edit form's one save: the settings, then the name when it changed (its history follows)."""
    from hcflask.engine.queue_names import check_name, rename_queue

    if name != queue.name:  # before anything is written: a refused name changes nothing
        check_name(name, Queue, queue)
    actions.update_queue(queue, options, description, autoexclusion)
    if name != queue.name:
        rename_queue(queue, name, actor)
    return queue


@bp.route("/queues/<name>/edit", methods=["GET", "POST"])
@permission_required("queue.edit")
def edit_queue(name: str) -> Any:
    queue = _live_queue(name)
    form = QueueForm()
    form.backend.choices = [queue.backend]
    if not form.is_submitted():
        form.fill(queue)
    elif form.validate():
        done = saved(form, lambda: _save_edit(queue, form.name.data or "", form.options_dict(),
                                              form.description.data or "", bool(form.autoexclusion.data), _actor()),
                     "Queue {row.name} saved.", "ui.queue", name=lambda q: q.name)
        if done is not None:
            return done
    return _queue_form(form, queue)


@bp.route("/queues/<name>/delete", methods=["POST"])
@permission_required("queue.edit")
def delete_queue(name: str) -> Any:
    queue = _live_queue(name)
    if ActionForm().validate_on_submit():
        try:
            flash(actions.delete_queue(queue, _actor()) + ".", "ok")
        except ValidationError as exc:
            flash(exc.reason, "error")
            return redirect(url_for("ui.queue", name=queue.name))
    return redirect(url_for("ui.queues"))


@bp.route("/templates/<int:template_id>/delete", methods=["POST"])
@permission_required("template.edit")
def delete_template(template_id: int) -> Any:
    row = db.get_or_404(Template, template_id)
    if ActionForm().validate_on_submit():
        name = row.name
        kept = actions.delete_template(row, _actor())
        flash(f"Template {name} deleted; its {kept} test(s) keep their snapshot.", "ok")
    return redirect(url_for("ui.templates"))


@bp.route("/users")
@permission_required("user.manage")
def users() -> Any:
    rows = list(db.session.scalars(select(User).order_by(User.username)))
    return _render("users.html", users=rows, form=ActionForm())


@bp.route("/users/<int:user_id>/remove", methods=["POST"])
@permission_required("user.manage")
def remove_user(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        name = user.username
        try:
            actions.remove_user(user, by=current_user)
        except ValidationError as exc:
            flash(exc.reason, "error")
        else:
            flash(f"User {name} removed, with their API tokens.", "ok")
    return redirect(url_for("ui.users"))


@bp.route("/users/<int:user_id>/<any(disable, enable):what>", methods=["POST"])
@permission_required("user.manage")
def disable_user(user_id: int, what: str) -> Any:
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        try:
            actions.set_user_disabled(user, what == "disable", by=current_user)
        except ValidationError as exc:
            flash(exc.reason, "error")
        else:
            flash(f"User {user.username} {what}d.", "ok")
    return redirect(url_for("ui.users"))


@bp.route("/api")
def api_docs() -> Any:
    """The API's documentation, drawn from /api/v1/openapi.json by the vendored Swagger UI."""
    return render_template("api_docs.html")

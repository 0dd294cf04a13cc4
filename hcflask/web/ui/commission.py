"""The *Commission* button of a queue page, the commissioning page and its downloadable file.

The button only creates the tests (:func:`hcflask.catalog.commission.start`,
no host: the core starts them at its next tick like any other test); the
page shows their progress and, once over, the same report as ``hc
commission`` prints, refreshed every 5 s until then.
"""
from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from hcflask import __version__, catalog
from hcflask.catalog import commission
from hcflask.extensions import db
from hcflask.models import Queue, ValidationError
from hcflask.web.auth import permission_required
from hcflask.web.ui import bp
from hcflask.web.ui.forms import ActionForm
from hcflask.web.ui.reports import INLINE_CSS, _static


def render_file(data: dict[str, Any]) -> str:
    """The commissioning report as one HTML file (CSS inline, no script, nothing fetched)."""
    css = "\n".join(_static(name) for name in INLINE_CSS).replace("</", "<\\/")
    return render_template("commission/file.html", c=data, standalone=True, version=__version__,
                           assets={"css": Markup(css)})  # noqa: S704 - our own static files


@bp.route("/queues/<name>/commission", methods=["POST"])
@permission_required("queue.commission")
def commission_queue(name: str) -> Any:
    row = db.first_or_404(select(Queue).where(Queue.name == name, Queue.deleted_at.is_(None)))
    if not ActionForm().validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("ui.queue", name=row.name))
    try:
        key = commission.start(row.name, list(catalog.ORDER), actor=f"admin:{current_user.username}")
    except ValidationError as exc:
        flash(f"{exc.field}: {exc.reason}", "error")
        return redirect(url_for("ui.queue", name=row.name))
    flash(f"Commissioning of {row.name} started: every probe of the catalogue runs once.", "ok")
    return redirect(url_for("ui.commission_page", key=key))


def _data(key: str) -> dict[str, Any]:
    if not commission.tests_of(key):
        abort(404)
    return {**commission.report(key), "progress": commission.progress(key)}


@bp.route("/commission/<key>")
def commission_page(key: str) -> Any:
    return render_template("commission/page.html", c=_data(key), standalone=False)


@bp.route("/commission/<key>.html")
def commission_file(key: str) -> Response:
    return Response(render_file(_data(key)), mimetype="text/html",
                    headers={"Content-Disposition": f'attachment; filename="hc-commission-{key}.html"'})

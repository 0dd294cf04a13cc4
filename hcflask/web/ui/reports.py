"""The report of a test (page, downloadable file) and the comparison page."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, current_app, render_template, request
from markupsafe import Markup

from hcflask import __version__
from hcflask.extensions import db
from hcflask.models import Test, ValidationError
from hcflask.web import compare as comparison
from hcflask.web import cost, report
from hcflask.web.ui import bp

#: what the self-contained file inlines, in order
INLINE_CSS = ("hc.css", "uplot/uPlot.min.css", "hc-robot.css")
INLINE_JS = ("uplot/uPlot.iife.min.js", "hc-plots.js")


def _static(name: str) -> str:
    return (Path(current_app.static_folder or "") / name).read_text()


def render_file(test: Test) -> str:
    """The report as one HTML file: CSS, JS and data inline, nothing fetched from anywhere."""
    css = "\n".join(_static(name) for name in INLINE_CSS).replace("</", "<\\/")
    js = "\n".join(_static(name) for name in INLINE_JS).replace("</", "<\\/")
    return render_template("report/file.html", r=report.build(test), standalone=True, version=__version__,
                           assets={"css": Markup(css), "js": Markup(js)})  # noqa: S704 - our own static files


@bp.app_context_processor
def _cost() -> dict[str, Any]:
    """``cost_of(...)`` for the cost tables on /overview, the queue page and /robot."""
    return {"cost_of": cost.cost_of, "cost_table": cost.overview_table}


@bp.route("/tests/<int:test_id>/report")
def report_page(test_id: int) -> Any:
    test = db.get_or_404(Test, test_id)
    return render_template("report/page.html", r=report.build(test), standalone=False)


@bp.route("/tests/<int:test_id>/report.html")
def report_file(test_id: int) -> Response:
    test = db.get_or_404(Test, test_id)
    name = f"hc-report-test-{test.id}.html"
    return Response(render_file(test), mimetype="text/html",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/compare")
def compare() -> Any:
    result, error = None, None
    if request.args.get("tests"):
        try:
            result = comparison.compare(request.args)
        except ValidationError as exc:
            error = exc
    status = 400 if error else 200
    return render_template("compare.html", result=result, error=error, args=request.args), status

"""JSON of a test's report and of a comparison (the pages' twins)."""
from __future__ import annotations

from typing import Any

from flask import jsonify, request

from hcflask.extensions import db
from hcflask.models import Test
from hcflask.web import compare, report
from hcflask.web.api import bp


@bp.route("/tests/<int:test_id>/report")
def test_report(test_id: int) -> Any:
    return jsonify(report.build(db.get_or_404(Test, test_id, description=f"no test {test_id}")))


@bp.route("/compare")
def compare_tests() -> Any:
    return jsonify(compare.compare(request.args))

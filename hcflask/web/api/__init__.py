"""The JSON API under /api/v1: reads open (or token/login when configured),
writes need an API token (``Authorization: Bearer hct_...``).  Errors are
JSON naming the field and the reason."""
from typing import Any

from flask import Blueprint, request

from hcflask.models import ValidationError

bp = Blueprint("api", __name__)


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 naming ``body``."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("body", "expected a JSON object (Content-Type: application/json)")
    return data


from hcflask.web.api import reports, routes  # noqa: E402,F401 - registers the views

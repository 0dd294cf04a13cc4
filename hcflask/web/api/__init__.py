"""The JSON API under /api/v1: reads open (or token/login when configured),
writes need an API token (``Authorization: Bearer hct_...``).  Errors are
JSON naming the field and the reason."""
from typing import Any

from flask import Blueprint, request

from hcflask.models import ValidationError

bp = Blueprint("api", __name__)


def json_body(allowed: set[str] | None = None, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, or a 400 naming ``body`` (or the first unknown key of ``allowed``).

    ``optional``: an empty body counts as ``{}``.
    """
    if optional and not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("body", "expected a JSON object (Content-Type: application/json)")
    extra = sorted(set(data) - allowed) if allowed is not None else []
    if extra:
        raise ValidationError(extra[0], f"unknown key (allowed: {', '.join(sorted(allowed or ()))})",
                              [(key, "unknown key") for key in extra[1:]])
    return data


def text_field(body: dict[str, Any], key: str, limit: int = 10_000) -> str:
    """An optional text field of a body: absent/null is empty, anything but text is a 400."""
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError(key, f"must be text of at most {limit} characters")
    return value


from hcflask.web.api import reports, routes  # noqa: E402,F401 - registers the views

"""The JSON API under /api/v1: reads open (or token/login when configured),
writes need an API token (``Authorization: Bearer hct_...``).  Errors are
JSON naming the field and the reason."""
from typing import Any

from flask import Blueprint, request

from hcflask.models import ValidationError

bp = Blueprint("api", __name__)


#: the Content-Types of a body and the document format each is (docs/api.md): the same three
#: formats as template files, read by the same parser (:mod:`hcflask.documents`)
BODY_TYPES = {"application/json": "json", "application/yaml": "yaml", "application/x-yaml": "yaml",
              "text/yaml": "yaml", "text/x-yaml": "yaml", "application/toml": "toml"}


class UnsupportedBody(ValidationError):
    """A body in a format the API does not read (HTTP 415)."""

    status = 415


def _document() -> Any:
    """The request body parsed by its Content-Type (none, or ``+json``: JSON)."""
    from hcflask import documents

    mimetype = request.mimetype or "application/json"
    fmt = "json" if mimetype.endswith("+json") else BODY_TYPES.get(mimetype)
    if fmt is None:
        raise UnsupportedBody("body", f"Content-Type {mimetype[:100]!r} is not read here: use application/json, "
                                      "application/yaml or application/toml")
    try:
        text = request.get_data().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("body", f"not UTF-8 text (byte {exc.start})") from None
    try:
        return documents.parse(text, fmt, "body")
    except ValidationError as exc:
        raise ValidationError("body", exc.reason.removeprefix("body: ")) from None


def json_body(allowed: set[str] | None = None, optional: bool = False) -> dict[str, Any]:
    """The request's object (JSON, YAML or TOML by its Content-Type), or a 400 naming ``body``
    (or the first unknown key of ``allowed``).

    ``optional``: an empty body counts as ``{}``.
    """
    if optional and not request.get_data():
        return {}
    data = _document()
    if not isinstance(data, dict):
        raise ValidationError("body", "expected an object (a mapping of field: value)")
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

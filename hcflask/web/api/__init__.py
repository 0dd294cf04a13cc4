"""The JSON API under /api/v1: reads open (or token/login when configured),
writes need an API token (``Authorization: Bearer hct_...``).  Errors are
JSON naming the field and the reason."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from hcflask.web.api import routes  # noqa: E402,F401 - registers the views

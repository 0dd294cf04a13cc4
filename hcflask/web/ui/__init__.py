"""Server-rendered pages."""
from flask import Blueprint

bp = Blueprint("ui", __name__)

from hcflask.web.ui import admin, commission, errors, imports, reports, routes  # noqa: E402,F401 - registers the views

"""The robot's pages (/robot, /overview), its API (/api/v1/robot/...,
/api/v1/overview/...) and the Prometheus endpoint (/metrics).

The API views are added to the ``api`` blueprint (so they share its token
checks and JSON errors); this package must therefore be imported before
that blueprint is registered, which :func:`hcflask.web.register_blueprints`
does.
"""
from flask import Blueprint

bp = Blueprint("robot", __name__)

from hcflask.web.robot import api, routes  # noqa: E402,F401 - registers the views

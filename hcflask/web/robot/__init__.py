"""The robot's pages (/robot, /overview), its API (/api/v1/robot/...,
/api/v1/overview/...) and the Prometheus endpoint (/metrics).

The API views are added to the ``api`` blueprint (so they share its token
checks and JSON errors); this package must therefore be imported before
that blueprint is registered, which :func:`hcflask.web.register_blueprints`
does.  The ``[robot]`` configuration is checked when the blueprint is
registered, so a typo in hc.toml stops the start with the key named.
"""
from typing import Any

from flask import Blueprint

bp = Blueprint("robot", __name__)


@bp.record_once
def _check_config(state: Any) -> None:
    from hcflask.engine.rules import check_config

    check_config(state.app.config["ROBOT"])


from hcflask.web.robot import api, routes  # noqa: E402,F401 - registers the views

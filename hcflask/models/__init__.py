"""The database models, named by the domain words of docs/design.md.

The queues, templates, tests and jobs (and their events, metrics and claims) are declared when
this package is imported: their relationships and foreign keys point only at each other, and
nearly every command reads them.  The others (robot, bands, outbox, rollups, users, audit, health) are
declared on first use, ``from hcflask.models import User`` as before (PEP 562 ``__getattr__``):
each ``hc`` run is a new process, and declaring and configuring those 18 models was an eighth
of a reading command (docs/operations.md, "How fast the hc command is").  Whatever needs every
table (the app of ``hc serve`` and of the tests, Alembic, a queue's deletion) calls
:func:`load_all` first.  Each of those modules imports the modules its own relationships and
foreign keys point at, so a mapper never waits for a class that was not declared.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hcflask.models.common import iso, utcnow
from hcflask.models.job import FinalState, Job, JobEvent, JobMetric
from hcflask.models.queue import Queue, QueueClaim, QueueEvent
from hcflask.models.spec import Conflict, ValidationError, validate_template
from hcflask.models.template import Template, match_queues
from hcflask.models.test import Test

if TYPE_CHECKING:
    from hcflask.models.audit import AuditEntry
    from hcflask.models.band import MetricBand
    from hcflask.models.health import BackendHealth, CoreLease, Host, TickRun
    from hcflask.models.outbox import Delivery
    from hcflask.models.robot import Alert, RobotEvent, RobotState
    from hcflask.models.rollup import Rollup, RollupReason, RollupTail, RollupTest, RollupTotal, Tally
    from hcflask.models.user import ApiToken, User

#: the models declared on first use, by the module that declares them
LAZY: dict[str, str] = {
    "AuditEntry": "audit",
    **dict.fromkeys(("BackendHealth", "CoreLease", "Host", "TickRun"), "health"),
    "Delivery": "outbox",
    "MetricBand": "band",
    **dict.fromkeys(("Alert", "RobotEvent", "RobotState"), "robot"),
    **dict.fromkeys(("Rollup", "RollupReason", "RollupTail", "RollupTest", "RollupTotal", "Tally"), "rollup"),
    **dict.fromkeys(("ApiToken", "User"), "user"),
}

__all__ = [
    "Alert", "ApiToken", "AuditEntry", "BackendHealth", "Conflict", "CoreLease", "Delivery", "FinalState", "Host",
    "Job", "JobEvent",
    "JobMetric", "MetricBand",
    "Queue", "QueueClaim", "QueueEvent", "RobotEvent", "RobotState", "Rollup", "RollupReason", "RollupTail",
    "RollupTest", "RollupTotal", "Tally", "Template", "Test",
    "TickRun", "User", "ValidationError", "iso", "load_all", "match_queues", "utcnow", "validate_template",
]


def __getattr__(name: str) -> Any:
    """A model of :data:`LAZY`, declared now (its module imported once; PEP 562)."""
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{LAZY[name]}"), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value


def load_all() -> None:
    """Declare every model: the metadata then holds every table (``create_all``, Alembic's
    comparison, the tables that point at a queue)."""
    for module in sorted(set(LAZY.values())):
        importlib.import_module(f"{__name__}.{module}")

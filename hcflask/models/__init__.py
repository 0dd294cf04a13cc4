"""The database models, named by the domain words of docs/design.md."""
from hcflask.models.audit import AuditEntry
from hcflask.models.common import iso, utcnow
from hcflask.models.health import BackendHealth, CoreLease, Host, TickRun
from hcflask.models.job import FinalState, Job, JobEvent, JobMetric
from hcflask.models.outbox import Delivery
from hcflask.models.queue import Queue, QueueClaim, QueueEvent
from hcflask.models.robot import Alert, MetricBand, RobotEvent, RobotState
from hcflask.models.rollup import Rollup, RollupReason, RollupTail, RollupTest, RollupTotal, Tally
from hcflask.models.spec import Conflict, ValidationError, validate_template
from hcflask.models.template import Template, match_queues
from hcflask.models.test import Test
from hcflask.models.user import ApiToken, User

__all__ = [
    "Alert", "ApiToken", "AuditEntry", "BackendHealth", "Conflict", "CoreLease", "Delivery", "FinalState", "Host",
    "Job", "JobEvent",
    "JobMetric", "MetricBand",
    "Queue", "QueueClaim", "QueueEvent", "RobotEvent", "RobotState", "Rollup", "RollupReason", "RollupTail",
    "RollupTest", "RollupTotal", "Tally", "Template", "Test",
    "TickRun", "User", "ValidationError", "iso", "match_queues", "utcnow", "validate_template",
]

"""One clock for leases, heartbeats, adoption and tick ages: the database's.

Two hosts that compare their own clocks disagree by their skew: 60 s gives
a permanent false "host not answering" alert, 11 minutes an adoption of a
live host.  So every time that another host reads back is taken from the
database (PostgreSQL ``clock_timestamp()``; SQLite has one host, whose clock
is the database's).  A host's own clock is only compared with it, and an
offset above :data:`SKEW_LIMIT` is shown on ``/healthz`` and by ``hc doctor``;
nothing else depends on it.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import text

from hcflask.extensions import db
from hcflask.models import utcnow

#: a host clock further than this off the database's is shown as a problem
SKEW_LIMIT = timedelta(seconds=30)


def db_now() -> datetime:
    """The database's time now, naive UTC like every stored timestamp."""
    if db.session.get_bind().dialect.name != "postgresql":
        return utcnow()
    return cast(datetime, db.session.scalar(text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")))


def offset() -> tuple[datetime, float]:
    """(the database's time, this host's clock minus it in seconds), the local
    reading taken halfway through the query so its round trip does not count."""
    before = utcnow()
    now = db_now()
    after = utcnow()
    return now, ((before + (after - before) / 2) - now).total_seconds()


def skew_problem(name: str, seconds: float) -> str:
    """'' when ``seconds`` is within the limit, else the sentence /healthz and hc doctor show."""
    if abs(seconds) <= SKEW_LIMIT.total_seconds():
        return ""
    side = "ahead of" if seconds > 0 else "behind"
    return (f"the clock of host {name} is {abs(seconds):.0f} s {side} the database's "
            f"(limit {SKEW_LIMIT.total_seconds():.0f} s): leases use the database's clock, "
            "but fix the host's time sync (chrony/ntpd)")

"""Stage-in throughput per queue for ``/metrics`` (issue 22 item 7).

A storage that slows down shows as the MB/s its test jobs get falling, long
before transfers time out; a Prometheus alert on this gauge sees it.  It is
one grouped query over the metrics of the jobs that ended in the last
:data:`WINDOW` (``ix_job_ended_at`` finds them; ``job_metric.job_id`` joins
their metrics), so a scrape costs the same with a million old jobs.  Only
jobs whose copy stage-in succeeded have ``stagein_mb_per_s``: a storage
that fails every job shows in the failure counters and the robot, not as a
slow rate.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from hcflask.extensions import db
from hcflask.models import Job, JobMetric, Queue, utcnow

#: the jobs the gauge averages over: those that ended this recently
WINDOW = timedelta(hours=1)


def prometheus_lines(label: Callable[[str], str]) -> list[str]:
    """``hc_stagein_mb_per_s{queue}`` (mean per job) and ``hc_stagein_jobs{queue}`` over :data:`WINDOW`."""
    rows = db.session.execute(
        select(Queue.name, func.count(), func.avg(JobMetric.value))
        .select_from(JobMetric).join(Job, Job.id == JobMetric.job_id).join(Queue, Queue.id == Job.queue_id)
        .where(JobMetric.name == "stagein_mb_per_s", Job.ended_at >= utcnow() - WINDOW)
        .group_by(Queue.name).order_by(Queue.name)).all()
    lines = ["# HELP hc_stagein_mb_per_s Mean stage-in MB/s per job of the jobs that ended in the last hour, "
             "by queue.", "# TYPE hc_stagein_mb_per_s gauge"]
    lines += [f'hc_stagein_mb_per_s{{queue="{label(name)}"}} {rate:.6g}' for name, _n, rate in rows]
    lines += ["# HELP hc_stagein_jobs Jobs with a successful stage-in that ended in the last hour, by queue.",
              "# TYPE hc_stagein_jobs gauge"]
    lines += [f'hc_stagein_jobs{{queue="{label(name)}"}} {n}' for name, n, _rate in rows]
    return lines

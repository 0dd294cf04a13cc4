"""Start-up reconciliation after a crash.

A job row is committed, with its unique name, before its backend is asked
to run it, and ``submit_attempts`` is counted up and committed right before
the call.  So after a crash the only doubtful jobs are ``pending`` ones with
attempts but no backend id: the batch system may or may not have them.
Look them up by name: adopt what it knows, mark ``lost`` what it never saw.
Never submit them again blindly.  Rows never handed to a backend (no
attempt) are not in doubt: the submission tick submits them as usual.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hcflask.backends import BackendUnavailable
from hcflask.engine.common import backend, by_backend, end_transaction, job_ref, log, my_host, record_health, tick
from hcflask.engine.submission import adopt
from hcflask.extensions import db
from hcflask.models import Job, Test, utcnow
from hcflask.states import JobState

LOST_REASON = "never reached the batch system (the service stopped while submitting the job)"


def reconcile_pending() -> dict[str, int]:
    jobs = db.session.scalars(
        select(Job).join(Test).where(
            Job.state == JobState.PENDING.value, Job.backend_id.is_(None), Job.submit_attempts > 0,
            Test.host == my_host(),
        ).options(selectinload(Job.queue))
    ).all()
    counts = {"adopted": 0, "lost": 0, "undecided": 0}
    for name, group in by_backend(jobs).items():
        refs = [job_ref(j) for j in group]
        end_transaction()
        try:
            found = backend(name).find_by_name(refs)
        except BackendUnavailable as exc:
            record_health(name, str(exc))
            counts["undecided"] += len(group)  # the submission tick looks them up before any resubmit
            continue
        for job in group:
            if job.name in found:
                adopt(job, found[job.name], "adopted after restart: found in the batch system by name")
                counts["adopted"] += 1
            else:
                job.failure_reason, job.ended_at = LOST_REASON, utcnow()
                job.transition(JobState.LOST, note=LOST_REASON)
                counts["lost"] += 1
    db.session.commit()
    if any(counts.values()):
        log.warning("reconciled jobs left pending by a crash: %s", counts)
    return counts


reconcile = tick("reconcile")(reconcile_pending)

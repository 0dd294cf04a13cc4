"""Reconciling jobs whose submission is in doubt.

A job row is committed, with its unique name, before its backend is asked
to run it, and the claim (``submit_attempts``, ``claimed_by``) is committed
right before the call.  So after a crash -- or when this host adopted a
dead host's tests -- the only doubtful jobs are ``pending`` ones with
attempts but no backend id, claimed by another process: the batch system
may or may not have them.  Look them up by name: adopt what it knows;
submit what the backend proves it never saw (:meth:`Backend.proves_absent`:
no local marker; not in Slurm's ``squeue -t all`` while younger than
MinJobAge, nor in its accounting); mark ``lost`` only a job that may have
run and left no trace.  Never submit a job blindly.

A job this process claimed is its submission thread's: reconcile leaves it
alone, so the two never act on one job.  Reconcile claims the jobs it takes
(a compare-and-set on their version) before asking the backend, and runs at
the start of the submission tick, so within one host one thread decides.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hcflask.backends import BackendUnavailable
from hcflask.engine.common import (
    backend,
    by_backend,
    claimant,
    end_transaction,
    job_ref,
    log,
    my_host,
    record_health,
    tick,
)
from hcflask.engine.jobs import fence
from hcflask.engine.jobs.submission import adopt
from hcflask.engine.service.clock import db_now
from hcflask.extensions import db
from hcflask.models import Job, Test, utcnow
from hcflask.states import JobState

LOST_REASON = ("lost while being submitted: the service stopped during the backend call, and the batch system "
               "cannot prove it never ran the job")


def reconcile_pending() -> dict[str, int]:
    """Decide every in-doubt job of this host's tests (see the module docstring)."""
    fence.hold("submission")
    mine = claimant()
    jobs = db.session.scalars(
        select(Job).join(Test).where(
            Job.state == JobState.PENDING.value, Job.backend_id.is_(None), Job.submit_attempts > 0,
            Job.claimed_by != mine, Test.host == my_host(),
        ).options(selectinload(Job.queue)).execution_options(populate_existing=True)
    ).all()
    counts = {"adopted": 0, "resubmitted": 0, "lost": 0, "undecided": 0}
    if not jobs:
        return counts
    now = db_now()
    ages = {job.id: now - job.updated_at for job in jobs}  # the claim wrote updated_at on the database's clock
    for job in jobs:
        job.claimed_by = f"{mine}/reconcile"[:128]
    end_transaction()  # the claim: a compare-and-set on each job's version
    for name, group in by_backend(jobs).items():
        adapter = backend(name)
        refs = [job_ref(j) for j in group]
        try:
            found = adapter.find_by_name(refs)
        except BackendUnavailable as exc:
            record_health(name, str(exc))
            counts["undecided"] += len(group)  # looked up again at the next pass
            continue
        for job in group:
            if job.name in found:
                adopt(job, found[job.name], "adopted: found in the batch system by name")
                counts["adopted"] += 1
            elif adapter.proves_absent(ages[job.id]):
                job.claimed_by = mine  # this process's submission submits it (after one more look by name)
                counts["resubmitted"] += 1
            else:
                job.failure_reason, job.ended_at = LOST_REASON, utcnow()
                job.transition(JobState.LOST, note=LOST_REASON)
                counts["lost"] += 1
        end_transaction()
    db.session.commit()
    if any(counts.values()):
        log.warning("reconciled jobs whose submission was in doubt: %s", counts)
    return counts


reconcile = tick("reconcile")(reconcile_pending)

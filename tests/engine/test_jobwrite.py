"""The batched job writes keep the jobs' compare-and-set (issue 20): a flush of many jobs in
which one changed under it writes none of them, nor their events (real SQLite, a second
connection as the other writer)."""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm.exc import StaleDataError

from hcflask.engine.jobs.submission import create_jobs
from hcflask.extensions import db
from hcflask.models import Job, JobEvent
from hcflask.states import JobState
from tests.conftest import statements
from tests.factories import make_queue, make_template, make_test


def test_one_stale_job_fails_the_whole_batch(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_test(make_template(jobs_in_flight=3), app)
        ids = [j.id for j in create_jobs()]
        jobs = db.session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id)).all()
        with db.engine.begin() as other:  # another host moved the second job on meanwhile
            other.execute(update(Job).where(Job.id == ids[1]).values(version=Job.version + 1, native_reason="x"))
        for job in jobs:
            job.transition(JobState.SUBMITTED, note="batch")
        with pytest.raises(StaleDataError):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalars(select(Job.state).order_by(Job.id)).all() == ["pending"] * 3
        assert db.session.scalar(select(func.count()).select_from(JobEvent)) == 0


def test_a_batch_is_one_update_and_bumps_every_version(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_test(make_template(jobs_in_flight=5), app)
        create_jobs()
        jobs = db.session.scalars(select(Job).order_by(Job.id)).all()
        before = [j.version for j in jobs]
        with statements(app) as seen:
            for job in jobs:
                job.transition(JobState.SUBMITTED, note="batch")
            db.session.commit()
        assert sum(s.lstrip().upper().startswith("UPDATE JOB") for s in seen) == 1, seen
        assert sum(s.lstrip().upper().startswith("INSERT INTO JOB_EVENT") for s in seen) == 1, seen
        db.session.expire_all()
        rows = db.session.scalars(select(Job).order_by(Job.id)).all()
        assert [j.version for j in rows] == [v + 1 for v in before]
        assert all(j.state == "submitted" and [e.note for e in j.events] == ["batch"] for j in rows)

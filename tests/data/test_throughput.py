"""The per-queue stage-in throughput on /metrics: the jobs of the last hour only, one query
however many jobs there are (the real stage-ins feed it in test_inputs_local.py)."""
from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Job, JobMetric, Queue, Template, utcnow
from tests.conftest import statements
from tests.factories import make_queue, make_template


def ended_jobs(queue: str, rates: list[float], ago: timedelta) -> None:
    """Finished jobs of ``queue`` with these stage-in rates, ended ``ago`` (rows as the judge leaves them)."""
    test = actions.start_test(db.session.scalars(select(Template)).first(), actor="tests")
    db.session.flush()
    where = db.session.scalar(select(Queue).where(Queue.name == queue))
    for i, rate in enumerate(rates):
        job = Job(test_id=test.id, queue_id=where.id, backend="local", name=f"j-{queue}-{ago.seconds}-{i}",
                  state="succeeded", started_at=utcnow() - ago - timedelta(seconds=5), ended_at=utcnow() - ago)
        job.metrics = [JobMetric(name="stagein_mb_per_s", value=rate, unit="MB/s"),
                       JobMetric(name="input_bytes", value=1e6, unit="B")]
        db.session.add(job)
    db.session.commit()


def scrape(app: Flask) -> str:
    return app.test_client().get("/metrics").get_data(as_text=True)


def test_mean_rate_per_queue_of_the_last_hour(app: Flask) -> None:
    with app.app_context():
        make_queue("site-a")
        make_queue("site-b")
        make_template("reads", queues=["site-*"])
        ended_jobs("site-a", [10.0, 20.0], timedelta(minutes=5))
        ended_jobs("site-a", [500.0], timedelta(hours=2))  # older than the window: left out
        ended_jobs("site-b", [3.5], timedelta(minutes=30))
    text = scrape(app)
    assert "# TYPE hc_stagein_mb_per_s gauge" in text
    assert 'hc_stagein_mb_per_s{queue="site-a"} 15\n' in text
    assert 'hc_stagein_jobs{queue="site-a"} 2\n' in text
    assert 'hc_stagein_mb_per_s{queue="site-b"} 3.5\n' in text


def test_one_query_however_many_jobs(app: Flask) -> None:
    with app.app_context():
        make_queue("site-a")
        make_template("reads", queues=["site-a"])
        ended_jobs("site-a", [1.0], timedelta(minutes=1))
    scrape(app)  # the first request of a process sets things up once
    with statements(app) as few:
        scrape(app)
    with app.app_context():
        ended_jobs("site-a", [float(i) for i in range(1, 201)], timedelta(minutes=2))
    with statements(app) as many:
        text = scrape(app)
    assert 'hc_stagein_jobs{queue="site-a"} 201' in text
    assert len(many) == len(few)
    assert len([s for s in many if re.search(r"\bjob_metric\b", s)]) == 1

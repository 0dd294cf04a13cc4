"""The report's metric rows: each queue against its own band, the bands of every queue read in one
statement (``hc test report`` builds the report in a fresh process, where a query per queue and
metric added up).  Real jobs on the real local backend."""
from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from hcflask.extensions import db
from hcflask.models import Job, MetricBand, Queue
from hcflask.web import report
from tests.conftest import statements
from tests.factories import make_queue, make_template, make_test, run_ticks


def test_each_queue_is_measured_against_its_own_band_read_in_one_statement(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_queue("q2")
        test = make_test(make_template("t1", queues=["q1", "q2"]), app)
        ok = select(func.count(func.distinct(Job.queue_id))).where(Job.test_id == test.id, Job.state == "succeeded")
        run_ticks(app, until=lambda: db.session.scalar(ok) == 2)
        q1 = db.session.scalar(select(Queue.id).where(Queue.name == "q1"))
        db.session.add(MetricBand(queue_id=q1, template="t1", metric="value", mean=38.0, sigma=1.0, k=3.0,
                                  points=20))
        db.session.commit()
        with statements(app) as seen:
            built = report.build(test)
        rows = {q["queue"]: q["metrics"] for q in built["queues"]}
        db.session.remove()
    [(name_1, first)], [(name_2, second)] = ([(m["metric"], m) for m in rows[q]] for q in ("q1", "q2"))
    assert name_1 == name_2 == "value"
    assert first["band"] == {"mean": 38.0, "lower": 35.0, "upper": 41.0} and first["against"] == "band"
    assert first["outside"] == first["summary"]["n"] >= 1  # every job printed value=42, above the band
    assert second["band"] is None and second["against"] is None and second["outside"] == 0
    assert sum("metric_band" in s for s in seen) == 1, [s for s in seen if "metric_band" in s]

"""Top-up arithmetic, snapshots and the life of a job on the local backend."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from hcflask.engine import actions
from hcflask.engine.jobs.submission import create_jobs, jobs_needed, submission_tick
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Job, Test
from hcflask.states import JobState, TestState
from tests.conftest import make_app
from tests.factories import make_queue, make_template, make_test, run_ticks


@pytest.mark.parametrize(
    ("snapshot", "in_flight", "total", "test_in_flight", "expected"),
    [
        ({"jobs_in_flight": 3}, 0, 0, 0, 3),
        ({"jobs_in_flight": 3}, 2, 10, 2, 1),
        ({"jobs_in_flight": 3}, 5, 10, 5, 0),
        ({"jobs_in_flight": 3, "max_jobs": 4}, 0, 2, 0, 2),
        ({"jobs_in_flight": 3, "max_jobs": 4}, 1, 4, 1, 0),
        ({"jobs_in_flight": 3, "max_running": 5}, 0, 0, 4, 1),
    ],
)
def test_jobs_needed(snapshot: dict[str, int], in_flight: int, total: int, test_in_flight: int,
                     expected: int) -> None:
    assert jobs_needed(snapshot, in_flight, total, test_in_flight) == expected


def test_rows_are_written_with_unique_names_before_submission(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_queue("q2")
        test = make_test(make_template(queues=["q*"], jobs_in_flight=2), app)
        created = create_jobs()
        assert len(created) == 4
        rows = db.session.scalars(select(Job)).all()
        assert {j.state for j in rows} == {"pending"}
        assert all(j.backend_id is None for j in rows)
        assert sorted(j.name for j in rows) == sorted(f"hc-{app.config['INSTANCE_NAME']}-{j.id}" for j in rows)
        assert {j.queue.name for j in rows} == {"q1", "q2"}
        assert test.queue_names == ["q1", "q2"]
        assert create_jobs() == []  # already topped up


def test_offline_queue_gets_no_jobs_but_excluded_does(app: Flask) -> None:
    with app.app_context():
        off = make_queue("off")
        exc = make_queue("exc")
        actions.set_queue_status(off, "offline", actor="admin:test")
        exc.status = "excluded"
        db.session.commit()
        make_test(make_template(queues=["off", "exc"]), app)
        created = create_jobs()
        assert [j.queue.name for j in created] == ["exc"]


def test_editing_a_template_does_not_change_a_running_test(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        template = make_template()
        test = make_test(template, app)
        doc = template.to_document()
        doc["workload"]["script"] = "echo changed"
        doc["jobs_in_flight"] = 5
        actions.save_template(doc, template)
        db.session.refresh(test)
        assert test.snapshot["workload"]["script"] == 'echo "hc-ok value=42"'
        assert test.snapshot["jobs_in_flight"] == 1
        assert len(create_jobs()) == 1


def test_job_goes_through_its_states_and_is_judged(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        test = make_test(make_template(script='sleep 1; echo "hc-ok value=42"', max_jobs=1), app)
        run_ticks(app, lambda: db.session.scalar(select(Job.state)) == "succeeded")
        job = db.session.scalars(select(Job)).one()
        steps = [(e.old_state, e.new_state) for e in job.events]
        assert steps[0] == ("pending", "submitted")
        assert steps[-1][1] == "succeeded"
        assert ("running" in {new for _, new in steps})
        assert job.exit_code == 0 and job.host and job.started_at and job.ended_at
        assert {m.name: m.value for m in job.metrics} == {"value": 42.0}
        assert job.metrics[0].unit == "s"
        # max_jobs reached and judged: the core tick completes the test
        core_tick(app)
        db.session.refresh(test)
        assert test.state == TestState.COMPLETED.value
        assert "judged" in test.note


def test_failing_workload_gets_a_reason(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_test(make_template(script="echo oops >&2; exit 3", max_jobs=1), app)
        run_ticks(app, lambda: db.session.scalar(select(Job.state)) == "failed")
        job = db.session.scalars(select(Job)).one()
        assert job.failure_reason == "exit 3: oops"
        assert job.exit_code == 3


def test_walltime_is_enforced_by_the_local_wrapper(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        make_test(make_template(script="sleep 30", max_jobs=1, workload={"resources": {"walltime": 1}}), app)
        run_ticks(app, lambda: db.session.scalar(select(Job.state)) == "failed", timeout=20)
        job = db.session.scalars(select(Job)).one()
        assert job.failure_reason == "timeout after 00:00:01"


def test_cancel_marks_then_core_tick_cancels_in_the_backend(app: Flask) -> None:
    with app.app_context():
        make_queue("q1", slots=1)
        test = make_test(make_template(script="sleep 30", jobs_in_flight=2), app)
        submission_tick(app)
        run_ticks(app, lambda: {j.state for j in db.session.scalars(select(Job))} == {"running", "queued"})
        actions.cancel_test(test, actor="admin:test")
        core_tick(app)
        run_ticks(app, lambda: db.session.scalars(select(Job.state).where(Job.state == "cancelled")).all() != [],
                  timeout=10)
        states = {j.state for j in db.session.scalars(select(Job))}
        # the queued one is cancelled; the running one is left to finish (jobs.cancel_running = false)
        assert states == {"cancelled", "running"}
        with pytest.raises(Exception, match="already cancelled"):
            actions.cancel_test(db.session.get(Test, test.id), actor="admin:test")


def test_test_with_no_matching_queue_errors(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        test = make_test(make_template(queues=["nothing*"]), app)
        assert test.state == TestState.ERROR.value
        assert "no queue matches nothing*" in test.note


def test_renewing_template_starts_a_new_test_when_the_last_ends(app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
        template = make_template(renew=True, lifetime=1)
        core_tick(app)
        first = db.session.scalars(select(Test)).one()
        assert first.state == "running"
        first.end_at = first.start_at  # its lifetime is over
        db.session.commit()
        core_tick(app)
        tests = db.session.scalars(select(Test).order_by(Test.id)).all()
        assert [t.state for t in tests] == ["completed", "running"]
        assert tests[1].template_id == template.id
        assert JobState.PENDING.value == "pending"


def test_a_capped_tick_shares_its_jobs_round_robin(tmp_path: Path) -> None:
    """More jobs needed than ``[scheduler] jobs_per_tick``: every test and queue gets its part in
    each tick, the odd job goes to the next pair in turn, and later ticks catch up (issue 21)."""
    app = make_app(tmp_path / "instance", SCHEDULER_JOBS_PER_TICK=5)
    with app.app_context():
        make_queue("q1")
        make_queue("q2")
        tests = [make_test(make_template(f"t{i}", queues=["q*"], jobs_in_flight=4), app) for i in range(2)]
        per_tick = []
        for _ in range(4):
            created = create_jobs()
            per_tick.append(Counter((j.test_id, j.queue.name) for j in created))
        assert [sum(c.values()) for c in per_tick] == [5, 5, 5, 1]
        pairs = {(t.id, q) for t in tests for q in ("q1", "q2")}
        assert all(set(c) == pairs for c in per_tick[:3]), per_tick  # nobody starves
        extra = [next(k for k, n in c.items() if n == 2) for c in per_tick[:3]]
        assert len(set(extra)) == 3, extra  # the odd job moves on
        assert sum(per_tick, Counter()) == dict.fromkeys(pairs, 4)
        db.session.remove()
        db.engine.dispose()

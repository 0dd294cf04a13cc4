"""A rollup rebuild on PostgreSQL while two real processes judge jobs: the
rebuild locks the rollup tables, so a job finalised meanwhile is counted once,
and the rollups equal those of a rebuild after the judges stop."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcflask.engine.data.rollups import rebuild
from hcflask.extensions import db
from hcflask.models import Job, Queue, Rollup, RollupReason, RollupTest, RollupTotal, Test
from tests.conftest import make_app
from tests.factories import make_queue, make_template

JOBS = 200
JUDGE = """
import sys, time
from pathlib import Path
from sqlalchemy import select
from tests.conftest import make_app
from hcflask.extensions import db
from hcflask.models import Job, utcnow
from hcflask.states import JobState
app = make_app(Path(sys.argv[1]), DATABASE_URL=sys.argv[2])
mine = int(sys.argv[3])
with app.app_context():
    ids = db.session.scalars(select(Job.id).where(Job.state == "running").order_by(Job.id)).all()
    for job_id in [i for i in ids if i % 2 == mine]:
        job = db.session.get_one(Job, job_id)
        job.ended_at = utcnow()
        job.failure_reason = "" if job_id % 3 else "exit 1"
        job.transition(JobState.SUCCEEDED if job_id % 3 else JobState.FAILED)
        db.session.commit()   # the job's state and its rollup counts, in one transaction
        time.sleep(0.002)
"""


def _rollups() -> dict[str, Any]:
    def rows(model: Any, keys: tuple[str, ...], values: tuple[str, ...]) -> set[tuple[Any, ...]]:
        return {tuple(getattr(r, k) for k in keys + values) for r in db.session.scalars(select(model))}

    db.session.expire_all()
    return {
        "day": rows(Rollup, ("queue_id", "template", "day"), ("succeeded", "failed", "cancelled", "lost")),
        "reason": rows(RollupReason, ("queue_id", "template", "day", "reason"), ("n",)),
        "total": rows(RollupTotal, ("queue_id", "template"), ("succeeded", "failed", "cancelled", "lost")),
        "test": rows(RollupTest, ("test_id", "queue_id"), ("succeeded", "failed", "cancelled", "lost")),
    }


def test_a_rebuild_while_two_processes_judge_counts_each_job_once(postgres: Any, tmp_path: Path) -> None:
    url = postgres.create_database()
    app = make_app(tmp_path / "main", DATABASE_URL=url)
    try:
        with app.app_context():
            make_queue("q1")
            template = make_template()
            test = Test.from_template(template)
            test.state = "running"
            db.session.add(test)
            queue = db.session.scalars(select(Queue)).one()
            db.session.add_all(Job(test=test, queue=queue, backend="local", name=f"hc-r-{i}", state="running",
                                   started_at=test.start_at, workdir="") for i in range(JOBS))
            db.session.commit()
        judges = [subprocess.Popen([sys.executable, "-c", JUDGE, str(tmp_path / f"j{i}"), url, str(i)],
                                   cwd=Path(__file__).resolve().parents[2]) for i in range(2)]
        rebuilds = 0
        with app.app_context():
            while any(j.poll() is None for j in judges):
                rebuild(db.session)
                db.session.commit()
                rebuilds += 1
                time.sleep(0.05)
            assert [j.wait(300) for j in judges] == [0, 0]
            assert rebuilds >= 3, "the judges finished before the rebuilds could overlap them"
            live = _rollups()
            rebuild(db.session)
            db.session.commit()
            after = _rollups()
        assert live == after
        assert sum(r[2] + r[3] for r in after["total"]) == JOBS  # succeeded + failed: every job, once
    finally:
        with app.app_context():
            db.engine.dispose()

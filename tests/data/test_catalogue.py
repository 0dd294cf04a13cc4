"""The catalogue's Rucio client: one login per process, not one per replica lookup
(counted in the real Rucio server's own token table); Rucio asked outside any
database transaction (seen in PostgreSQL's pg_stat_activity while Rucio hangs);
the replica list asked again for a renewed test."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from data_servers import RucioServer, load_dataset
from sqlalchemy import select
from test_inputs_local import READER, data_app, finished, inputs_doc

from hcflask.data import catalogue, plan
from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Test
from tests.factories import make_queue, make_template, make_test, run_ticks


def logins(rucio_server: RucioServer) -> int:
    """Tokens Rucio has issued (each userpass login writes one row of its ``tokens`` table)."""
    url = rucio_server.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM tokens").fetchone()
    assert row is not None
    return int(row[0])


def test_one_login_for_many_lookups(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any]) -> None:
    # every pass asks Rucio again (refresh 0): ten lookups for each of two queues
    app = data_app(tmp_path, rucio_server, RUCIO_REFRESH_SECONDS=0.0)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        make_queue("site-b", rse=dataset["rse"])
        template = make_template("reads", queues=["site-*"], script="true", max_jobs=0,
                                 inputs=inputs_doc(dataset["did"]))
        make_test(template, app)
        token_file = Path(catalogue.client(app.config).token_file)
        catalogue.forget()  # a fresh process
        before = logins(rucio_server)
        for _ in range(10):
            # the client's token file is shared by every Rucio client of this user and account on the
            # host (a stage-out job's, another instance's) and tmp cleaners remove it: the engine keeps its own
            token_file.unlink(missing_ok=True)
            plan.prepare()
        assert len([a for a in plan._cache().values() if a.files]) == 2
        assert logins(rucio_server) - before == 1




def test_a_hung_rucio_holds_no_database_transaction(tmp_path: Path, rucio_server: RucioServer,
                                                    dataset: dict[str, Any], postgres: Any) -> None:
    """The submission tick asks Rucio with no transaction open: while Rucio hangs (its gunicorn stopped
    with SIGSTOP: the kernel accepts the connection, no answer comes), PostgreSQL shows none of the
    app's connections inside a transaction (which would hold its locks and snapshot for as long)."""
    url = postgres.create_database()
    app = data_app(tmp_path, rucio_server, DATABASE_URL=url, RUCIO_REFRESH_SECONDS=0.0, RUCIO_TIMEOUT=15.0)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        make_test(make_template("reads", queues=["site-a"], script="true", max_jobs=0,
                                inputs=inputs_doc(dataset["did"])), app)
        plan.prepare()  # logged in: the next ask is a plain lookup
    assert rucio_server.proc is not None
    group = rucio_server.proc.pid
    ticked = threading.Event()

    def tick() -> None:
        with app.app_context():
            submission_tick(app)
        ticked.set()

    os.killpg(group, signal.SIGSTOP)
    try:
        thread = threading.Thread(target=tick)
        thread.start()
        time.sleep(2)
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            states = [row[0] for row in conn.execute(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        assert not ticked.is_set(), "the tick waits for Rucio"
        assert states and "idle in transaction" not in states, states
    finally:
        os.killpg(group, signal.SIGCONT)
    thread.join(60)
    assert ticked.is_set()


def test_a_renewed_test_asks_rucio_again(tmp_path: Path, rucio_server: RucioServer, dataset: dict[str, Any],
                                         xrd_env: None) -> None:
    """The replica list is cached per test (refresh_seconds: an hour by default); a renewal is a new
    test, so it reads what the dataset holds then: a file added in between is read by its first job."""
    rucio = dataset["rucio"]
    load_dataset(rucio, dataset["rse"], dataset["scope"], "hc_renewed", tmp_path / "one", files=1, prefix="hc_ren_a")
    app = data_app(tmp_path, rucio_server)
    with app.app_context():
        make_queue("site-a", rse=dataset["rse"])
        make_template("reads", queues=["site-a"], script=READER, max_jobs=1, renew=True,
                      inputs=inputs_doc(f"{dataset['scope']}:hc_renewed", files_per_job=2))
        core_tick(app)
        first = db.session.scalars(select(Test)).one()
        run_ticks(app, lambda: len(finished(first.id)) == 1, timeout=60)
        (job,) = finished(first.id)
        assert job.state == "succeeded" and [f["name"] for f in job.inputs] == ["hc_ren_a_00.root"]
        load_dataset(rucio, dataset["rse"], dataset["scope"], "hc_renewed", tmp_path / "two", files=1,
                     prefix="hc_ren_b")
        for _ in range(2):
            core_tick(app)  # the first test completes (its one job judged), the template renews, it starts
        db.session.expire_all()
        tests = db.session.scalars(select(Test).order_by(Test.id)).all()
        assert [t.state for t in tests] == ["completed", "running"], [t.state for t in tests]
        run_ticks(app, lambda: len(finished(tests[1].id)) == 1, timeout=60)
        (job,) = finished(tests[1].id)
        assert job.state == "succeeded", job.failure_reason
        assert sorted(f["name"] for f in job.inputs) == ["hc_ren_a_00.root", "hc_ren_b_00.root"]

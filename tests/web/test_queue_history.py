"""Delete and re-create a queue: every report, page and API answer about an old test stays byte for
byte what it was (issue 25, item 1).  Real local jobs on the old queue and on the new one."""
from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from hcflask.engine import actions
from hcflask.engine.service.core import core_tick
from hcflask.extensions import db
from hcflask.models import Job, Test
from tests.factories import make_queue, make_template, make_test, run_ticks

#: the one part of a report that is meant to change: when it was generated
GENERATED = re.compile(r'(?<="generated_at": ")[^"]*(?=")|(?<="generated_at":")[^"]*(?=")'
                       r'|(?<=<dt>generated</dt><dd>)[^<]*(?=<)')


def _same(text: str) -> str:
    return GENERATED.sub("(generated)", text)


def _judged(app: Flask, test_id: int, n: int) -> None:
    run_ticks(app, lambda: db.session.scalar(select(Test).where(Test.id == test_id)).state == "completed"
              or len([j for j in db.session.scalars(select(Job).where(Job.test_id == test_id)) if j.ended_at]) >= n)


def _capture(client: FlaskClient, runner: FlaskCliRunner, token: str, tests: list[int]) -> dict[str, str]:
    api = {"Authorization": f"Bearer {token}"}
    out: dict[str, str] = {}
    for test_id in tests:
        out[f"cli {test_id}"] = runner.invoke(args=["test", "report", str(test_id)]).output
        out[f"cli json {test_id}"] = runner.invoke(args=["test", "report", str(test_id), "--json"]).output
        for url in (f"/tests/{test_id}", f"/tests/{test_id}/report", f"/api/v1/tests/{test_id}",
                    f"/api/v1/tests/{test_id}/report", f"/api/v1/jobs?test={test_id}&queue=site-a"):
            response = client.get(url, headers=api)
            assert response.status_code == 200, url
            out[url] = response.get_data(as_text=True)
        home = client.get("/").get_data(as_text=True)
        out[f"home {test_id}"] = re.findall(rf'<tr data-test="{test_id}">.*?</tr>', home, re.S)[0]
    out["compare"] = client.get(f"/compare?tests={tests[0]}&queues=site-a,site-b&metric=run_time").get_data(
        as_text=True)
    return {key: _same(value) for key, value in out.items()}


def test_an_old_test_reads_the_same_after_its_queue_is_re_created(app: Flask, client: FlaskClient,
                                                                   runner: FlaskCliRunner, api_token: str) -> None:
    with app.app_context():
        make_queue("site-a")
        make_queue("site-b")
        functional = make_test(make_template("f", queues=["site-*"], jobs_in_flight=2), app)
        stress = make_test(make_template("s", queues=["site-a"], kind="stress",
                                         stress={"ramp": [{"at": 0, "in_flight": 2}], "max_jobs": 2}), app)
        _judged(app, functional.id, 4)
        _judged(app, stress.id, 2)
        actions.cancel_test(functional, "tests")
        run_ticks(app, lambda: all(j.ended_at for j in db.session.scalars(select(Job))))
        core_tick(app)  # the stress test completes: both are history now
        ids = [functional.id, stress.id]
        assert [db.session.get(Test, i).state for i in ids] == ["cancelled", "completed"]
        site_a = db.session.scalar(select(Test).where(Test.id == stress.id)).queue_ids[0]
        assert actions.delete_queue(actions.db.session.get(actions.Queue, site_a), "tests").startswith(
            "queue site-a deleted")
    before = _capture(client, runner, api_token, ids)
    assert "site-a (deleted)" in before[f"/tests/{ids[1]}"] and "site-a (deleted)" in before[f"home {ids[0]}"]
    with app.app_context():
        make_queue("site-a")  # the same name, a new queue: it starts empty, and gets jobs of its own
        again = make_test(make_template("f2", queues=["site-a"]), app)
        _judged(app, again.id, 1)
        actions.cancel_test(db.session.get(Test, again.id), "tests")
        run_ticks(app, lambda: all(j.ended_at for j in db.session.scalars(select(Job))))
        again_id = again.id
    after = _capture(client, runner, api_token, ids)
    for key in before:
        assert after[key] == before[key], key
    assert '"queue": "site-a"' in before[f"cli json {ids[1]}"] and '"jobs": 2' in before[f"cli json {ids[1]}"]
    assert "difference" in before["compare"].lower() and 'class="flash error"' not in before["compare"]
    # a new queue with the same name starts empty: only its own test is listed for it
    listed = client.get("/api/v1/tests?queue=site-a", headers={"Authorization": f"Bearer {api_token}"}).get_json()
    assert [t["id"] for t in listed["items"]] == [again_id]

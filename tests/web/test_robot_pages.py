"""The robot page, the overview, /metrics and their JSON, with data from
real jobs of the ``local`` backend (one queue failing, one passing)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hcflask.engine.robot.robot import robot_pass
from hcflask.extensions import db
from hcflask.models import Job, Queue, RobotEvent, Test
from tests.conftest import csrf_token
from tests.factories import make_queue, make_template, make_test, run_ticks

SCRIPT = ('if [ "$HC_QUEUE" = bad1 ]; then echo "segfault in payload" >&2; exit 3; fi\n'
          'echo "hc-ok value=$((40 + HC_JOB_ID % 5))"')


@pytest.fixture
def data(app: Flask) -> Flask:
    with app.app_context():
        for name in ("bad1", "good1", "idle1"):
            make_queue(name)
        make_test(make_template("t1", ["bad1", "good1"], script=SCRIPT, autoexclusion=True, jobs_in_flight=2), app)

        def done(queue: str) -> int:
            return db.session.scalar(select(func.count()).select_from(Job).join(Queue).where(
                Queue.name == queue, Job.state.in_(["succeeded", "failed"])))

        run_ticks(app, lambda: done("bad1") >= 3 and done("good1") >= 3, timeout=60)
        robot_pass()
        assert db.session.scalar(select(Queue.status).where(Queue.name == "bad1")) == "excluded"
    return app


def test_robot_page_shows_tiles_exclusions_and_log(data: Flask, client: FlaskClient) -> None:
    page = client.get("/robot").get_data(as_text=True)
    tiles = dict(re.findall(r'data-queue="([^"]+)" data-class="([^"]+)"', page))
    assert tiles == {"bad1": "bad", "good1": "good", "idle1": "notest"}
    exclusions = page.split('id="exclusions"')[1].split("</table>")[0]
    assert "bad1" in exclusions and "last_failed_in_one" in exclusions and "good1" not in exclusions
    assert "last_failed_in_one" in page.split('id="rules"')[1] and "exclude_last = 3" in page
    log = client.get("/robot?kind=exclude&queue=bad1").get_data(as_text=True).split('id="events"')[1]
    assert "the last 3 jobs of t1 failed" in log
    assert "No events." in client.get("/robot?kind=exclude&queue=good1").get_data(as_text=True)
    assert 'src="/static/uplot/uPlot.iife.min.js"' in page and "cdn" not in page.lower()


def test_overview_and_its_json(data: Flask, client: FlaskClient) -> None:
    page = client.get("/overview?days=7").get_data(as_text=True)
    heat = page.split('id="heatmap"')[1].split("</table>")[0]
    rows = {m.group(1): re.findall(r'<td class="c-(\w+)"', m.group(2))
            for m in re.finditer(r'>(\w+)</a></th>(.*?)</tr>', heat, re.S)}
    assert rows["bad1"][-1] == "bad" and rows["good1"][-1] == "good" and rows["idle1"][-1] == "notest"
    assert len(rows["bad1"]) == 7 and set(rows["bad1"][:-1]) <= {"notest", "bad"}
    plots = [json.loads(m) for m in re.findall(r'<script type="application/json">(.*?)</script>', page, re.S)]
    assert [p["title"] for p in plots] == ["Excluded queues per day", "Submitted jobs per day, by outcome"]
    assert plots[0]["series"][0]["values"][-1] == 1
    stacked = {s["label"]: s["values"][-1] for s in plots[1]["series"]}
    with data.app_context():
        total = db.session.scalar(select(func.count()).select_from(Job))
    assert sum(stacked.values()) == total and stacked["failed"] >= 3 and stacked["succeeded"] >= 3
    jobs = client.get("/api/v1/overview/jobs?days=2").get_json()
    assert len(jobs["data"]) == 2 and jobs["data"][-1] == {"day": jobs["to"], **stacked}
    avail = {r["queue"]: r for r in client.get("/api/v1/overview/availability?days=1").get_json()["data"]}
    assert avail["good1"]["availability"] == 100.0 and avail["bad1"]["availability"] == 0.0
    assert avail["idle1"]["availability"] is None
    excluded = client.get("/api/v1/overview/excluded?days=1").get_json()["data"]
    assert excluded[-1]["queues"] == ["bad1"]


def test_prometheus_metrics(data: Flask, client: FlaskClient) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    assert 'hc_queue_status{queue="bad1",backend="local",status="excluded"} 1' in text
    assert 'hc_queue_status{queue="good1",backend="local",status="online"} 1' in text
    assert re.search(r'hc_jobs_total\{queue="bad1",template="t1",outcome="failed"\} [3-9]', text)
    assert 'hc_alerts_open{kind="outage"} 0' in text and "hc_robot_enabled 1" in text


def test_queue_and_test_pages_show_robot_and_metric_plots(data: Flask, client: FlaskClient) -> None:
    page = client.get("/queues/bad1").get_data(as_text=True)
    verdict = page.split('id="robot-verdict"')[1].split("</div>\n")[0]
    assert "exclude" in verdict and "the last 3 jobs of t1 failed" in page
    good = client.get("/queues/good1").get_data(as_text=True)
    plots = [json.loads(m) for m in re.findall(r'<script type="application/json">(.*?)</script>', good, re.S)]
    assert plots and plots[0]["metric"] == "value" and all(40 <= v <= 44 for v in plots[0]["v"])
    with data.app_context():
        test_id = db.session.scalar(select(Test.id))
    page = client.get(f"/tests/{test_id}").get_data(as_text=True)
    plots = [json.loads(m) for m in re.findall(r'<script type="application/json">(.*?)</script>', page, re.S)]
    kinds = {p["title"]: p for p in plots}
    hist = kinds["value histogram, per queue"]
    assert {q["label"] for q in hist["queues"]} == {"good1"}
    over_time = next(p for title, p in kinds.items() if title.startswith("value") and "over time" in title)
    assert sum(hist["queues"][0]["counts"]) == len(over_time["series"][0]["v"])
    assert over_time["unit"] == hist["unit"]


def test_switch_from_the_page_needs_an_admin_and_is_logged(app: Flask, client: FlaskClient,
                                                          admin_client: FlaskClient) -> None:
    assert client.get("/robot").status_code == 200
    token = csrf_token(admin_client, "/robot")
    response = admin_client.post("/robot/switch", data={"csrf_token": token, "enabled": "0", "reason": "upgrade"})
    assert response.status_code == 302
    assert client.get("/api/v1/robot/status").get_json()["enabled"] is False
    with app.app_context():
        event = db.session.scalar(select(RobotEvent).where(RobotEvent.kind == "switch"))
        assert event.actor == "admin" and "upgrade" in event.message
    admin_client.post("/logout", data={"csrf_token": csrf_token(admin_client, "/robot")})
    assert client.post("/robot/switch", data={"enabled": "1"}).status_code in (302, 400)
    assert client.get("/api/v1/robot/status").get_json()["enabled"] is False


def test_api_switch_and_baseline_need_a_token(client: FlaskClient, api_token: str) -> None:
    assert client.post("/api/v1/robot/switch", json={"enabled": False}).status_code == 401
    auth = {"Authorization": f"Bearer {api_token}"}
    bad = client.post("/api/v1/robot/switch", json={"enabled": "no"}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "enabled"
    ok = client.post("/api/v1/robot/switch", json={"enabled": False, "reason": "api"}, headers=auth)
    assert ok.get_json()["enabled"] is False and ok.get_json()["changed_by"] == "admin"
    assert client.post("/api/v1/robot/bands/1/baseline", json={}).status_code == 401
    assert client.post("/api/v1/robot/bands/99/baseline", json={}, headers=auth).status_code == 404


def test_static_uplot_is_served(client: FlaskClient) -> None:
    response = client.get("/static/uplot/uPlot.iife.min.js")
    assert response.status_code == 200 and b"uPlot" in response.data
    assert Path(__file__).parents[2].joinpath("hcflask/static/uplot/LICENSE").read_text().startswith("The MIT")


def test_a_baseline_window_with_a_utc_offset_is_converted(app: Flask, admin_client: FlaskClient,
                                                          api_token: str) -> None:
    """``12:00+02:00`` is 10:00 UTC, from the API and from the queue page's form (the API
    used to drop the offset and pin 12:00; the form let the aware time through to a 500)."""
    from datetime import datetime

    from hcflask.models import MetricBand

    with app.app_context():
        queue = make_queue("q-offset")
        band = MetricBand(queue_id=queue.id, template="t", metric="cpu", mean=1.0, sigma=0.1, k=3, points=0,
                          pinned_by="")
        db.session.add(band)
        db.session.commit()
        band_id = band.id
    auth = {"Authorization": f"Bearer {api_token}"}
    answer = admin_client.post(f"/api/v1/robot/bands/{band_id}/baseline", headers=auth,
                               json={"from": "2026-11-24T12:00+02:00", "to": "2026-11-24T13:00Z"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    with app.app_context():
        pinned = db.session.get(MetricBand, band_id)
        assert (pinned.pinned_from, pinned.pinned_to) == (datetime(2026, 11, 24, 10), datetime(2026, 11, 24, 13))
    form = {"csrf_token": csrf_token(admin_client, "/queues/q-offset"), "from": "2026-11-24T09:00-05:00",
            "to": "2026-11-24T15:00"}
    assert admin_client.post(f"/robot/bands/{band_id}/baseline", data=form).status_code == 302
    with app.app_context():
        pinned = db.session.get(MetricBand, band_id)
        assert (pinned.pinned_from, pinned.pinned_to) == (datetime(2026, 11, 24, 14), datetime(2026, 11, 24, 15))
    form["from"] = "yesterday"
    page = admin_client.post(f"/robot/bands/{band_id}/baseline", data=form, follow_redirects=True)
    assert page.status_code == 200 and "from: expected an ISO date/time" in page.get_data(as_text=True)


def test_failure_signatures_on_the_pages_the_api_and_the_cli(data: Flask, client: FlaskClient) -> None:
    with data.app_context():
        failed = db.session.scalar(select(Job).join(Queue).where(Queue.name == "bad1", Job.state == "failed"))
        assert failed is not None and failed.failure_signature == "exit 3: segfault in payload"
        job_id = failed.id
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "<code>exit 3: segfault in payload</code>" in page.split('id="signature"')[1][:200]
    queue_page = client.get("/queues/bad1").get_data(as_text=True)
    assert "signature: <code>exit 3: segfault in payload</code>" in queue_page  # the robot's claim
    top = queue_page.split('id="signatures"')[1].split("</table>")[0]
    assert "exit 3: segfault in payload" in top
    body = client.get("/api/v1/robot/signatures").get_json()
    assert [(s["signature"], s["queues"]) for s in body["signatures"]] == [("exit 3: segfault in payload", 1)]
    assert body["signatures"][0]["jobs"] >= 3
    assert client.get("/api/v1/robot/signatures?queue=good1").get_json()["signatures"] == []
    bad = client.get("/api/v1/robot/signatures?since=yesterday")
    assert bad.status_code == 400 and "since" in bad.get_data(as_text=True)
    runner = data.test_cli_runner()
    out = runner.invoke(args=["robot", "signatures"])
    assert out.exit_code == 0 and "exit 3: segfault in payload" in out.output
    refused = runner.invoke(args=["robot", "signatures", "--since", "last week"])
    assert refused.exit_code != 0 and "--since" in refused.output
    status = runner.invoke(args=["robot", "status"])
    assert "not covered by a driving test" in [line for line in status.output.splitlines()
                                                if line.startswith("idle1")][0]

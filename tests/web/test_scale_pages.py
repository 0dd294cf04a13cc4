"""Statement counts that do not grow with the data (no N+1), limits checked at
start-up, and date ranges that are too wide or malformed answered with a 400."""
from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask import create_app
from hcflask.config import ConfigError
from hcflask.extensions import db
from hcflask.models import JobMetric, MetricBand, Queue, utcnow
from tests.conftest import statements
from tests.scale_history import finish, new_job, setup


def history(app: Flask, jobs: int) -> int:
    rng = random.Random(5)  # noqa: S311 - reproducible data
    with app.app_context():
        tests = setup(app, queues=3, templates=1)
        queues = list(db.session.scalars(select(Queue)))
        start = utcnow() - timedelta(days=2)
        for n in range(jobs):
            job = new_job(tests[0], queues[n % 3].id, start + timedelta(minutes=n), n)
            finish(job, rng, start + timedelta(minutes=n + 1))
            job.metrics += [JobMetric(name=m, value=rng.random()) for m in ("cpu", "io")]
        for queue in queues:
            db.session.add_all(MetricBand(queue_id=queue.id, template="t0", metric=m, mean=0.5, sigma=0.1, k=3,
                                          points=20, pinned_by="") for m in ("cpu", "io"))
        db.session.commit()
        return tests[0].id


def test_no_n_plus_one_on_the_jobs_api_and_the_test_page(app: Flask, client: FlaskClient) -> None:
    test_id = history(app, 300)
    with statements(app) as seen:
        body = client.get("/api/v1/jobs?per_page=500").get_json()
    assert len(body["items"]) == 300 and body["items"][0]["metrics"].keys() == {"cpu", "io"}
    assert len(seen) <= 6, seen
    with statements(app) as seen:
        page = client.get(f"/tests/{test_id}")
    assert page.status_code == 200
    assert sum("metric_band" in s for s in seen) == 1, [s for s in seen if "metric_band" in s]
    assert len(seen) <= 30, len(seen)


@pytest.mark.parametrize(("query", "field"), [
    ("days=400", "days"), ("days=0", "days"), ("from=2020-01-01&to=2026-01-01", "from"),
    ("from=yesterday", "from"), ("to=2026-13-01", "to"), ("from=2026-02-01&to=2026-01-01", "from"),
])
def test_date_ranges_are_checked(client: FlaskClient, query: str, field: str) -> None:
    api = client.get(f"/api/v1/overview/jobs?{query}")
    assert api.status_code == 400 and api.get_json()["error"]["field"] == field
    page = client.get(f"/overview?{query}")
    assert page.status_code == 400 and field in page.get_data(as_text=True)


@pytest.mark.parametrize(("key", "value", "named"), [
    ("JOBS_PER_PAGE", 0, "jobs.per_page"), ("RETENTION_CHUNK", 0, "retention.chunk"),
    ("DISK_MIN_FREE_PERCENT", 150.0, "disk.min_free_percent"),
])
def test_limits_are_checked_at_start_up(tmp_path: Path, key: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        create_app({"INSTANCE_PATH": tmp_path, "SECRET_KEY": "x", key: value})


def test_per_page_zero_in_hc_toml_is_one_cli_line(tmp_path: Path) -> None:
    import os
    import subprocess

    (tmp_path / "hc.toml").write_text('secret_key = "x"\n[jobs]\nper_page = 0\n')
    done = subprocess.run(["hc", "queue", "list"], env={**os.environ, "HC_INSTANCE": str(tmp_path)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.strip() == "Error: jobs.per_page: must be greater than 0, got 0"


def test_test_counts_read_finished_jobs_from_the_rollup(app: Flask, client: FlaskClient) -> None:
    """Test lists count finished jobs from ``rollup_test``; the job table is read only
    for jobs in flight (a few hundred rows through the state index), never all 30."""
    history(app, 30)
    with statements(app) as seen:
        counts = client.get("/api/v1/tests").get_json()["items"][0]["jobs"]
    assert counts["total"] == 30 and counts["completed"] + counts["failed"] + counts["cancelled"] == 30
    assert [s for s in seen if "FROM rollup_test" in s]
    job_reads = [s for s in seen if "FROM job" in s]
    assert job_reads and all("job.state IN" in s for s in job_reads), job_reads


def test_past_days_of_reports_are_read_once_per_process(app: Flask, client: FlaskClient) -> None:
    """The rollup sums of past days are kept for [reports] cache_seconds; today's are read each time."""
    history(app, 60)
    first = client.get("/api/v1/overview/heatmap?days=7").get_json()
    with statements(app) as seen:
        again = client.get("/api/v1/overview/heatmap?days=7").get_json()
    assert again == first and sum(r["cells"][-3]["finished"] for r in first["data"]["rows"]) > 0
    rollup_reads = [s for s in seen if "FROM rollup" in s]
    assert len(rollup_reads) == 1, rollup_reads  # today only


def past_rollup_reads(seen: list[str]) -> list[str]:
    """The statements that summed rollups (each page reads today's afresh, once per report)."""
    return [s for s in seen if "FROM rollup " in s and "sum(" in s]


def test_a_warmed_worker_serves_its_first_overview_from_the_cache(app: Flask, client: FlaskClient) -> None:
    """``warm`` (run as each gunicorn worker starts) sums the default month, so the
    first /overview reads only today's rollups; an unwarmed worker sums the past too."""
    from hcflask.web import warm

    history(app, 60)
    with statements(app) as cold:
        assert client.get("/overview").status_code == 200
    app.extensions.pop("hc_rollup_sums")
    warm(app)
    with statements(app) as warmed:
        assert client.get("/overview").status_code == 200
    assert len(past_rollup_reads(cold)) == 2 * len(past_rollup_reads(warmed)) > 0


def test_warming_without_a_database_leaves_the_worker_up(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A database that does not answer when a worker starts (here: its file gone, so no
    tables) is logged, and the worker serves; the sums are then made by the first page."""
    from hcflask.web import warm
    from tests.conftest import make_app

    app = make_app(tmp_path / "instance")
    with app.app_context():
        db.engine.dispose()
    (tmp_path / "instance" / "hc.sqlite").unlink()
    warm(app)
    assert "report sums not prepared at start" in capfd.readouterr().err
    assert app.test_client().get("/healthz").status_code in (200, 503)


def test_a_page_of_a_list_reads_its_rows_by_id(app: Flask, client: FlaskClient) -> None:
    """Whole rows are read only for the page's ids (found through an index first): with
    a filter over joins (``template``), SQLite otherwise read and sorted every matching row."""
    history(app, 40)
    with statements(app) as seen:
        body = client.get("/api/v1/jobs?template=t0&per_page=7&page=2").get_json()
    assert [j["id"] for j in body["items"]] == list(range(33, 26, -1)) and body["total"] == 40
    full_rows = [s for s in seen if s.startswith("SELECT job.id, job.test_id")]
    assert full_rows and all("LIMIT" not in s and "job.id IN" in s for s in full_rows), full_rows


def test_the_jobs_of_a_template_are_one_index_range(app: Flask, client: FlaskClient) -> None:
    """``?template=`` reads ``job.template_id`` (copied from the test as the job is
    written); deleting the template clears it, so a new template of that name does
    not inherit the old jobs."""
    from hcflask.engine import actions
    from hcflask.models import Job, Template
    from tests.factories import make_template

    history(app, 12)
    with statements(app) as seen:
        assert client.get("/api/v1/jobs?template=t0").get_json()["total"] == 12
    assert any("job.template_id =" in s for s in seen) and not any("JOIN test" in s for s in seen)
    with app.app_context():
        assert set(db.session.scalars(select(Job.template_id))) == {db.session.scalar(select(Template.id))}
        actions.delete_template(db.session.scalar(select(Template)), "admin:x")
        assert set(db.session.scalars(select(Job.template_id))) == {None}
        make_template("t0", ["q0"])
    assert client.get("/api/v1/jobs?template=t0").get_json()["total"] == 0

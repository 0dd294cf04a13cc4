"""One way to show a time: pages, reports and the CLI say ``2026-12-03 08:25:02 UTC``, a page read
in a display zone the same shape with that zone's abbreviation (``2026-12-03 09:25:02 CET``);
reports, the CLI and the API stay UTC, the API as ISO 8601 with ``Z`` (issue 25 item 6 with issue
23's display zones).  The test page labels its planned end and its real one."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import User
from hcflask.times import shown
from tests.factories import make_queue, make_template

#: a time as shown: the zone is an abbreviation (UTC, CET, JST) or, for zones without one, an offset
SHOWN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|[A-Z]{3,5}|[+-]\d\d(\d\d)?)")
STARTED = datetime(2026, 12, 3, 7, 25, 2)
FINISHED = datetime(2026, 12, 3, 8, 25, 2)


def test_shown_takes_stored_aware_and_iso_times() -> None:
    assert shown(FINISHED) == "2026-12-03 08:25:02 UTC"
    assert shown(datetime(2026, 12, 3, 9, 25, 2, tzinfo=timezone(timedelta(hours=1)))) == "2026-12-03 08:25:02 UTC"
    assert shown("2026-12-03T08:25:02Z") == "2026-12-03 08:25:02 UTC"
    assert shown(None) == "–" and shown("", missing="-") == "-"


@pytest.mark.parametrize("zone, expected", [
    ("Europe/Zurich", "2026-12-03 09:25:02 CET"),
    ("Asia/Tokyo", "2026-12-03 17:25:02 JST"),
    ("America/Sao_Paulo", "2026-12-03 05:25:02 -03"),  # tzdata gives this zone no abbreviation
    ("", "2026-12-03 08:25:02 UTC"),
    ("UTC", "2026-12-03 08:25:02 UTC"),
    ("Not/AZone", "2026-12-03 08:25:02 UTC"),  # a zone this machine no longer knows: UTC, said so
])
def test_shown_in_a_display_zone_names_it(zone: str, expected: str) -> None:
    assert shown(FINISHED, zone) == expected
    assert SHOWN.fullmatch(expected)


def test_summer_time_has_its_own_abbreviation() -> None:
    assert shown(datetime(2026, 7, 3, 8, 25, 2), "Europe/Zurich") == "2026-07-03 10:25:02 CEST"


@pytest.fixture
def ended(app: Flask) -> int:
    """The id of a test that ran from 07:25:02 to 08:25:02 on 2026-12-03 (planned for a day)."""
    with app.app_context():
        make_queue("q1")
        test = actions.start_test(make_template("t1"), actor="tests")
        test.state, test.started_at, test.finished_at = "completed", STARTED, FINISHED
        test.start_at, test.end_at = STARTED, STARTED + timedelta(days=1)
        db.session.commit()
        return test.id


def in_zone(app: Flask, zone: str) -> None:
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == "admin"))
        user.timezone = zone
        db.session.commit()


def test_the_report_shows_its_times_as_every_page(client: FlaskClient, ended: int) -> None:
    """It printed ``2026-12-03T08:25:02Z UTC``."""
    for url in (f"/tests/{ended}/report", f"/tests/{ended}/report.html"):
        html = client.get(url).get_data(as_text=True)
        assert "<dt>started</dt><dd>2026-12-03 07:25:02 UTC</dd>" in html, url
        assert "<dt>finished</dt><dd>2026-12-03 08:25:02 UTC</dd>" in html, url
        assert re.search(rf"<dt>generated</dt><dd>{SHOWN.pattern}</dd>", html), url
        assert "Z UTC" not in html and "UTC UTC" not in html


def test_the_test_page_says_planned_end_and_finished(client: FlaskClient, ended: int) -> None:
    html = client.get(f"/tests/{ended}").get_data(as_text=True)
    assert "<dt>planned end</dt><dd>2026-12-04 07:25:02 UTC</dd>" in html
    assert "<dt>finished</dt><dd>2026-12-03 08:25:02 UTC</dd>" in html
    assert "<dt>end</dt>" not in html and "UTC UTC" not in html


def test_a_display_zone_shows_its_abbreviation_and_the_report_stays_utc(app: Flask, admin_client: FlaskClient,
                                                                         ended: int) -> None:
    in_zone(app, "Europe/Zurich")
    html = admin_client.get(f"/tests/{ended}").get_data(as_text=True)
    assert "<dt>planned end</dt><dd>2026-12-04 08:25:02 CET</dd>" in html
    assert "<dt>finished</dt><dd>2026-12-03 09:25:02 CET</dd>" in html
    assert "Europe/Zurich)" not in html and "CET CET" not in html  # the zone once per time, not in heads too
    report = admin_client.get(f"/tests/{ended}/report").get_data(as_text=True)
    assert "<dt>finished</dt><dd>2026-12-03 08:25:02 UTC</dd>" in report
    assert admin_client.get(f"/api/v1/tests/{ended}").get_json()["finished_at"] == "2026-12-03T08:25:02Z"


def test_the_api_keeps_iso_utc(client: FlaskClient, ended: int) -> None:
    assert client.get(f"/api/v1/tests/{ended}").get_json()["finished_at"] == "2026-12-03T08:25:02Z"
    report = client.get(f"/api/v1/tests/{ended}/report").get_json()
    assert report["test"]["finished_at"] == "2026-12-03T08:25:02Z"


def test_the_cli_shows_times_as_the_pages(runner: FlaskCliRunner, ended: int) -> None:
    out = runner.invoke(args=["test", "list"]).output
    row = next(line for line in out.splitlines() if line.startswith(str(ended)))
    assert "2026-12-03 07:25:02 UTC" in row and "2026-12-03 08:25:02 UTC" in row


@pytest.mark.parametrize("zone", ["", "Asia/Tokyo"])
def test_every_time_on_the_pages_has_one_format(app: Flask, admin_client: FlaskClient, ended: int,
                                               zone: str) -> None:
    """Whatever the page and the zone, a time is ``YYYY-MM-DD HH:MM:SS ZONE``: never ISO with T,
    never to the minute only, never without its zone."""
    in_zone(app, zone)
    seen = set()
    for url in ("/", "/tests", f"/tests/{ended}", "/queues", "/queues/q1", "/templates/t1", "/audit", "/robot",
                "/users", "/tokens"):
        html = admin_client.get(url).get_data(as_text=True)
        text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S))
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), url
        found = [m.group(0) for m in re.finditer(r"\d{4}-\d\d-\d\d \d\d:\d\d\S*( [A-Z]{3,5}|[+-]\d\d)?", text)]
        seen.update(url for _ in found[:1])
        for when in found:
            assert SHOWN.fullmatch(when), (url, when)
            assert when.endswith("JST" if zone else "UTC"), (url, when)
    assert {"/", "/tests", f"/tests/{ended}", "/users"} <= seen


def test_the_token_list_shows_times_as_the_pages(runner: FlaskCliRunner, admin: object) -> None:
    assert runner.invoke(args=["token", "create", "admin", "--name", "grafana"]).exit_code == 0
    row = next(line for line in runner.invoke(args=["token", "list"]).output.splitlines() if "grafana" in line)
    assert SHOWN.search(row) and row.split()[-2:] == ["never", "-"], row

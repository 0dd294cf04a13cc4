"""The admin's whole path through the site, in real headless Chromium against the real service.

Log in, create a template from the form, start a test, watch a running job's
page and the home page's counts move by themselves (htmx, no reload), read the
job's output and metrics, cancel the test.  A hostile description must show as text and never run.
Set ``HC_TEST_SCREENSHOTS=<dir>`` to keep a screenshot of every page visited.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

HOSTILE = "<script>alert(1)</script>"
TEMPLATE = "browser-e2e"
SHOTS = os.environ.get("HC_TEST_SCREENSHOTS")


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS, f"{name}.png")), full_page=True)


def _completed(page: Any, test_id: int) -> int:
    return int(page.locator(f'tr[data-test="{test_id}"] td.num.ok').first.inner_text())


@pytest.mark.slow
def test_admin_runs_a_test_from_the_browser(browser_context: Any, service: Any) -> None:
    page = browser_context.new_page()
    dialogs: list[str] = []
    confirms: list[str] = []

    def on_dialog(dialog: Any) -> None:
        """Destructive buttons ask first (accepted here); any other dialog is a script that ran."""
        if dialog.type == "confirm":
            confirms.append(dialog.message)
            dialog.accept()
        else:
            dialogs.append(dialog.message)
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))

    # A write page sends an anonymous visitor to the login form, and back after it.
    page.goto(f"{service.url}/templates/new")
    assert "/login" in page.url
    _shot(page, "login")
    page.fill("#username", service.admin)
    page.fill("#password", service.password)
    page.click("#login")
    page.wait_for_url(re.compile(r"/templates/new$"))
    assert page.locator("header").inner_text().count(service.admin) == 1

    # Create the template from the form.  Its jobs wait (at most 60 s) for the release file,
    # so the test decides when a job it watches ends.
    release = service.instance.parent / "release"
    page.fill("#name", TEMPLATE)
    page.fill("#description", HOSTILE)
    page.fill("#queues", "local")
    page.fill("#lifetime", "300")
    page.fill("#jobs_in_flight", "2")
    page.fill("#script", f"for i in $(seq 300); do [ -e {shlex.quote(str(release))} ] && break; sleep 0.2; done\n"
                         'echo "hc-ok value=7"')
    _shot(page, "template_form")
    page.click("#save-template")
    page.wait_for_url(re.compile(r"/templates/\d+$"))
    assert TEMPLATE in page.locator("h1").inner_text()
    assert f"Template {TEMPLATE} saved." in page.locator(".flash.ok").inner_text()
    assert page.get_by_text(HOSTILE, exact=True).count() == 1, "the hostile description is not shown as text"
    assert page.locator("main script").count() == 0

    # Start a test from the template page.
    page.click("#start-test")
    page.wait_for_url(re.compile(r"/tests/\d+$"))
    test_id = int(page.url.rsplit("/", 1)[1])
    assert f"Test {test_id} scheduled" in page.locator(".flash.ok").inner_text()

    # A running job's page turns into the succeeded job's page by itself, with its output and metric.
    page.goto(f"{service.url}/tests/{test_id}?state=running")
    page.locator("#jobs tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    assert "running" in page.locator("h1 .badge").inner_text()
    page.evaluate("window.hcNotReloaded = true")
    release.touch()
    page.locator("h1 .badge", has_text="succeeded").wait_for(timeout=20_000)
    assert page.evaluate("window.hcNotReloaded") is True, "the job page changed by a reload, not by htmx"
    assert "hc-ok value=7" in page.locator("pre#stdout").inner_text()
    metrics = page.locator(".card", has_text="Metrics").inner_text()
    assert re.search(r"value\s+7(\.0+)?\b", metrics), metrics
    _shot(page, "job")

    # The home page's counts move without a reload.
    page.goto(service.url + "/")
    row = page.locator(f'tr[data-test="{test_id}"]')
    assert TEMPLATE in row.inner_text()
    before = _completed(page, test_id)
    page.evaluate("window.hcNotReloaded = true")
    page.wait_for_function(
        "([id, before]) => Number(document.querySelector(`tr[data-test='${id}'] td.num.ok`)?.textContent) > before",
        arg=[test_id, before], timeout=30_000,
    )
    assert page.evaluate("window.hcNotReloaded") is True, "the counts moved by a reload, not by htmx"
    assert _completed(page, test_id) > before
    assert "running" in row.locator(".badge").inner_text()
    _shot(page, "home")

    # The hostile description is text on the templates list too.
    page.goto(f"{service.url}/templates")
    assert page.get_by_text(HOSTILE, exact=True).count() == 1
    _shot(page, "templates")
    page.goto(f"{service.url}/tests/{test_id}")
    _shot(page, "test")

    # The queue page lists the job; then cancel the test.
    page.goto(f"{service.url}/queues/local")
    assert page.locator("table").last.locator("tbody tr a").count() > 0
    _shot(page, "queue")
    page.goto(f"{service.url}/tests/{test_id}")
    page.click("#cancel-test")
    page.wait_for_url(re.compile(rf"/tests/{test_id}$"))
    assert f"Test {test_id} cancelled" in page.locator(".flash.ok").inner_text()
    assert "cancelled" in page.locator("h1 .badge").inner_text()
    assert confirms == [f"Cancel test {test_id}? Its pending jobs are cancelled."]

    assert dialogs == [], f"a script ran in the page: {dialogs}"
    assert page_errors == [], page_errors

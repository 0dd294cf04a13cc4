"""The admin's everyday work in real headless Chromium against the real service:
queues created, edited and deleted from the forms; a template deactivated,
reactivated and deleted; a confirmation before each destructive button; a
table sorted by a click; the home page at 1024 px; the API documentation
drawn offline; a token revoked on /tokens and then refused by the API.
Every request the browser makes is recorded: none may leave 127.0.0.1, and
none may fail (the favicon included).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser


class Recorder:
    """Every request, failed response, confirmation and page error of a page."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.confirms: list[str] = []
        self.answer = True
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.confirms.append(f"{dialog.type}: {dialog.message}")
        dialog.accept() if self.answer else dialog.dismiss()

    def off_machine(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname not in ("127.0.0.1", None) or
                urlsplit(u).scheme not in ("http", "data", "blob")]


def new_template(page: Any, service: Any, name: str, queues: str) -> str:
    """Create a template from the form; the URL of its page."""
    page.goto(f"{service.url}/templates/new")
    page.fill("#name", name)
    page.fill("#queues", queues)
    page.click("#save-template")
    page.wait_for_url(re.compile(r"/templates/\d+$"))
    return str(page.url)


@pytest.fixture(scope="module")
def admin_page(browser_context: Any, service: Any) -> Iterator[tuple[Any, Recorder]]:
    page = browser_context.new_page()
    recorder = Recorder(page)
    page.goto(f"{service.url}/login")
    page.fill("#username", service.admin)
    page.fill("#password", service.password)
    page.click("#login")
    page.wait_for_url(re.compile(r"/$"))
    yield page, recorder
    page.close()


@pytest.mark.slow
def test_create_edit_and_delete_a_queue(admin_page: tuple[Any, Recorder], service: Any) -> None:
    page, rec = admin_page
    page.goto(f"{service.url}/queues")
    page.click("#new-queue")
    offered = page.locator("#backend option").all_inner_texts()
    assert "local" in offered
    assert len(offered) == 3 or page.locator("#backends-unusable").count() == 1
    page.fill("#name", "browser-q")
    page.select_option("#backend", "local")
    page.fill("#options", "slots: 2")
    page.fill("#description", "made in the browser")
    page.click("#save-queue")
    page.wait_for_url(re.compile(r"/queues/browser-q$"))
    assert "Queue browser-q created." in page.locator(".flash.ok").inner_text()
    assert "2" in page.locator("dl.kv", has_text="option slots").inner_text()

    page.click("#edit-queue")
    assert page.locator("#name").get_attribute("readonly") is None  # a new name renames the queue
    page.fill("#options", "slots: many")
    page.click("#save-queue")
    assert "must be a whole number" in page.locator(".row", has=page.locator("#options")).inner_text()
    assert rec.failed == [f"400 {service.url}/queues/browser-q/edit"]  # the form, sent back with its error
    rec.failed.clear()
    rec.errors.clear()
    page.fill("#options", "slots: 3")
    page.fill("#description", "edited in the browser")
    page.fill("#name", "browser-r")
    page.click("#save-queue")
    page.wait_for_url(re.compile(r"/queues/browser-r$"))
    assert "edited in the browser" in page.locator("main").inner_text()

    # Dismissed: nothing happens.  Accepted: the queue is gone from the list.
    rec.answer = False
    page.click("#delete-queue")
    assert rec.confirms[-1].startswith("confirm: Delete queue browser-r?")
    assert page.url.endswith("/queues/browser-r")
    assert "Queue browser-r saved." in page.locator(".flash.ok").inner_text()  # the page did not change
    rec.answer = True
    page.click("#delete-queue")
    page.wait_for_url(re.compile(r"/queues$"))
    assert "queue browser-r deleted" in page.locator(".flash.ok").inner_text()
    assert page.locator("#queues a", has_text="browser-r").count() == 0
    assert rec.errors == [] and rec.failed == [], (rec.errors, rec.failed)


def test_deactivate_reactivate_and_delete_a_template(admin_page: tuple[Any, Recorder], service: Any) -> None:
    page, rec = admin_page
    template_url = new_template(page, service, "browser-t", "local")

    page.click("#toggle-template")
    assert rec.confirms[-1].startswith("confirm: Deactivate template browser-t?")
    page.wait_for_url(template_url)
    assert "deactivated" in page.locator("h1").inner_text()
    assert page.locator("#start-test").count() == 0
    page.click("#toggle-template")  # activating asks nothing
    page.wait_for_url(template_url)
    assert "activated" in page.locator(".flash.ok").inner_text()
    assert page.locator("#start-test").count() == 1

    page.click("#delete-template")
    assert rec.confirms[-1].startswith("confirm: Delete template browser-t?")
    page.wait_for_url(re.compile(r"/templates$"))
    assert "Template browser-t deleted" in page.locator(".flash.ok").inner_text()
    assert page.locator("#templates a", has_text="browser-t").count() == 0


def test_switching_the_robot_off_asks_first(admin_page: tuple[Any, Recorder], service: Any) -> None:
    page, rec = admin_page
    page.goto(f"{service.url}/robot")
    rec.answer = False
    page.locator("#switch button").click()
    assert rec.confirms[-1].startswith("confirm: Switch auto-exclusion off?")
    page.reload()
    assert page.locator("#switch strong").first.inner_text() == "on"
    rec.answer = True


def test_sort_a_table_by_a_click(admin_page: tuple[Any, Recorder], service: Any) -> None:
    page, _ = admin_page
    for name in ("sort-b", "sort-a", "sort-c"):
        page.goto(f"{service.url}/queues/new")
        page.fill("#name", name)
        page.select_option("#backend", "local")
        page.click("#save-queue")
        page.wait_for_url(re.compile(rf"/queues/{name}$"))
    page.goto(f"{service.url}/queues")

    def names() -> list[str]:
        return page.locator("#queues tbody tr td:first-child").all_inner_texts()

    assert names() == sorted(names())
    head = page.locator("#queues thead th", has_text="name")
    head.click()
    assert names() == sorted(names()) and head.get_attribute("aria-sort") == "ascending"
    head.click()
    assert names() == sorted(names(), reverse=True) and head.get_attribute("aria-sort") == "descending"
    assert names()[0] == "sort-c"


def test_home_page_at_1024_px(browser_context: Any, admin_page: tuple[Any, Recorder], service: Any) -> None:
    """Every column of the tests table is on screen at 1024 px; queue patterns are not links."""
    page, rec = admin_page
    new_template(page, service, "wide-t", "local loc*")
    page.click("#start-test")
    page.wait_for_url(re.compile(r"/tests/\d+$"))
    page.set_viewport_size({"width": 1024, "height": 768})
    try:
        page.goto(service.url + "/")
        page.locator("table.tests tbody tr[data-test]").first.wait_for()
        last = page.locator("table.tests thead th").last
        box = last.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1024, box
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
        assert "queues online" in page.locator("#excluded-now").inner_text() or \
            "No queue excluded" in page.locator("#excluded-now").inner_text()
        assert page.locator("table.tests a[data-status]").count() >= 1
        for href in page.locator("table.tests td.queues a").evaluate_all("els => els.map(e => e.href)"):
            assert "*" not in href, f"a pattern links to {href}"
    finally:
        page.set_viewport_size({"width": 1400, "height": 900})
    assert rec.failed == [], rec.failed


def test_api_documentation_renders_offline(admin_page: tuple[Any, Recorder], service: Any) -> None:
    page, rec = admin_page
    rec.requests.clear()
    page.goto(service.url + "/")
    page.click("header >> text=API")
    page.wait_for_url(re.compile(r"/api$"))
    page.locator(".opblock").first.wait_for(timeout=20_000)
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/queues/{key}" in s for s in summaries), summaries
    assert page.locator(".opblock-delete").count() >= 2
    assert any(u.endswith("/api/v1/openapi.json") for u in rec.requests)
    assert rec.off_machine() == [], rec.off_machine()
    assert rec.errors == [] and rec.failed == [], (rec.errors, rec.failed)


def test_revoke_a_token_then_the_api_refuses_it(admin_page: tuple[Any, Recorder], service: Any) -> None:
    """A token made and revoked on /tokens in the browser; the API takes it before and refuses it after."""
    import requests

    def status_with(token: str) -> int:
        return requests.post(f"{service.url}/api/v1/queues", json={}, timeout=10,
                             headers={"Authorization": f"Bearer {token}"}).status_code

    page, _ = admin_page
    page.goto(f"{service.url}/tokens")
    page.fill("#name", "browser-revoke")
    page.select_option("#scope", "admin")
    page.click("#create-token")
    token = page.locator("#new-token code").inner_text()
    assert status_with(token) == 400, "a valid admin token gets past authentication to the body check"
    row = page.locator("#tokens tr", has_text="browser-revoke")
    row.locator("a", has_text="Revoke").click()
    page.click("#confirm-revoke")
    page.wait_for_url(re.compile(r"/tokens$"))
    assert "revoked" in page.locator("#tokens tr", has_text="browser-revoke").inner_text()
    assert status_with(token) == 401

"""``/account`` in real headless Chromium against the real service: change one's
password (the old one no longer signs in, the new one does), and pick a
display time zone (the pages show times in it and say so; the API stays UTC)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.web.conftest import Service

pytestmark = pytest.mark.browser
NEW_PASSWORD = "a brand new password"


def log_in(page: Any, service: Service, password: str) -> None:
    page.goto(f"{service.url}/login")
    page.fill("#username", service.admin)
    page.fill("#password", password)
    page.click("#login")


def test_password_change_and_time_zone(browser_context: Any, service: Service) -> None:
    page = browser_context.new_page()
    log_in(page, service, service.password)
    page.wait_for_url(f"{service.url}/")

    page.goto(f"{service.url}/account")
    page.fill("#current", "not my password")
    page.fill("#new", NEW_PASSWORD)
    page.fill("#repeat", NEW_PASSWORD)
    page.click("#change-password")
    assert "not your current password" in page.locator("#password-form").inner_text()
    page.fill("#current", service.password)
    page.fill("#new", NEW_PASSWORD)
    page.fill("#repeat", NEW_PASSWORD)
    page.click("#change-password")
    page.wait_for_url(f"{service.url}/account")
    assert "Password changed." in page.locator(".flash.ok").inner_text()

    page.select_option("#timezone", "Asia/Tokyo")  # UTC+9, no daylight saving
    page.click("#save-zone")
    assert "Asia/Tokyo" in page.locator(".flash.ok").inner_text()
    page.goto(f"{service.url}/audit")
    shown = page.locator("#audit tbody tr").first.locator("td").first.inner_text()
    assert shown.endswith(" JST"), shown  # every time names its zone
    tokyo_now = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=9)
    assert abs(datetime.strptime(shown, "%Y-%m-%d %H:%M:%S JST") - tokyo_now) < timedelta(minutes=5), shown
    assert page.locator("body").get_attribute("data-tz") == "Asia/Tokyo"  # the plots' axes read it
    rows = page.locator("#audit tbody").inner_text()
    assert "POST /account/password" in rows and "not your current password" in rows  # the refusal, with why

    page.click("header button:has-text('Log out')")
    log_in(page, service, service.password)
    assert "Unknown user or wrong password." in page.locator(".flash.error").inner_text()
    log_in(page, service, NEW_PASSWORD)
    page.wait_for_url(re.compile(re.escape(service.url) + "/$"))
    assert page.locator("#account-link").inner_text() == service.admin

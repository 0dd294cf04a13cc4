"""Hostile strings in every free-text field, rendered by real headless Chromium against the real service.

Template and queue descriptions, a metric's unit, regex patterns, admin reasons (queue
status, robot switch, test cancel), a token's name, and job output (stdout, stderr and the failure
reason taken from it) all carry script-like text.  Every page that shows them is opened, as the admin
and anonymously, with a ``dialog`` listener: no dialog may fire and each string shows as text.
"""
from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest
import requests

from tests.web.conftest import Service, _hc

pytestmark = pytest.mark.browser

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "</textarea><svg onload=alert(3)>",
    "'-alert(4)-'",
    "javascript:alert(5)",
]
ONE = " ".join(HOSTILE)


def _api(service: Service, token: str, method: str, path: str, body: dict[str, Any]) -> Any:
    response = requests.request(method, f"{service.url}/api/v1{path}", json=body, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201), (path, response.text)
    return response.json()


def _wait_finished(service: Service, test_id: int) -> list[dict[str, Any]]:
    """The test's jobs once one has finished (the service runs them with 1-second ticks)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        jobs = requests.get(f"{service.url}/api/v1/jobs", params={"test": test_id, "state": "succeeded,failed"},
                            timeout=10).json()["items"]
        if jobs:
            return jobs  # type: ignore[no-any-return]
        time.sleep(0.5)
    pytest.fail(f"no job of test {test_id} finished:\n{service.log_tail()}")


@pytest.fixture(scope="module")
def hostile(service: Service) -> dict[str, Any]:
    env = {**os.environ, "HC_INSTANCE": str(service.instance), "HC_DEMO": "false"}
    made = subprocess.run([*_hc(), "token", "create", service.admin, "--name", ONE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    token = made.stdout.strip()
    _api(service, token, "POST", "/queues", {"name": "hostile-q", "backend": "local", "description": ONE})
    _api(service, token, "POST", "/queues/hostile-q/status", {"status": "test", "reason": ONE})
    workload = {"script": f"printf '%s\\n' {' '.join(repr(h) for h in HOSTILE)}; echo v=3",
                "success": {"must_not_match": [HOSTILE[0]]},
                "metrics": {"v": {"pattern": "v=(?P<v>[0-9]+)", "unit": HOSTILE[1]}}}
    good = _api(service, token, "POST", "/templates", {"name": "hostile-ok", "description": ONE,
                                                       "queues": ["local"], "workload": workload})
    failing = _api(service, token, "POST", "/templates", {
        "name": "hostile-fail", "description": ONE, "queues": ["local"],
        "workload": {"script": f"echo {HOSTILE[1]!r} >&2; exit 3"}})
    tests = [_api(service, token, "POST", "/tests", {"template": t["name"]})["id"] for t in (good, failing)]
    jobs = [job for test_id in tests for job in _wait_finished(service, test_id)]
    for test_id in tests:
        _api(service, token, "POST", f"/tests/{test_id}/cancel", {"reason": ONE})
    _api(service, token, "POST", "/robot/switch", {"enabled": True, "reason": ONE})
    return {"templates": [good["id"], failing["id"]], "tests": tests, "jobs": [j["id"] for j in jobs]}


def _pages(hostile: dict[str, Any]) -> list[str]:
    pages = ["/", "/tests", "/templates", "/queues", "/queues/hostile-q", "/queues/local", "/robot", "/overview",
             "/robot?kind=switch"]
    pages += [f"/templates/{i}" for i in hostile["templates"]] + [f"/tests/{i}" for i in hostile["tests"]]
    return pages + [f"/jobs/{i}" for i in hostile["jobs"]]


def _visit(page: Any, url: str) -> str:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    page.wait_for_load_state("networkidle")
    return str(page.locator("body").inner_text())


@pytest.mark.slow
def test_no_hostile_string_runs_anywhere(browser_context: Any, service: Service, hostile: dict[str, Any]) -> None:
    page = browser_context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(f"{page.url}: {dialog.message}"), dialog.dismiss()))
    shown = ""
    for path in _pages(hostile):
        shown += _visit(page, service.url + path)
    # admin-only pages too (the edit form puts the description into an input's value)
    page.goto(f"{service.url}/login")
    page.fill("#username", service.admin)
    page.fill("#password", service.password)
    page.click("#login")
    page.wait_for_url(f"{service.url}/")
    for path in [*_pages(hostile), "/tokens", "/audit", f"/templates/{hostile['templates'][0]}/edit"]:
        shown += _visit(page, service.url + path)
    assert page.locator("#description").input_value() == ONE
    assert dialogs == [], dialogs
    for text in HOSTILE:
        assert text in shown, f"{text!r} was not shown as text anywhere"
    page.close()

"""The robot's plots in real headless Chromium against the real service: the
vendored uPlot must load under the Content-Security-Policy and draw on the
overview, queue and test pages, with no console error.
Set ``HC_TEST_SCREENSHOTS=<dir>`` to keep a screenshot of each page."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.web.conftest import _hc

pytestmark = pytest.mark.browser

TEMPLATE = """
name: robot-plots
queues: [local]
jobs_in_flight: 2
autoexclusion: true
workload:
  script: 'echo "hc-ok value=$((30 + HC_JOB_ID % 7))"'
  success: {must_match: [hc-ok]}
  metrics:
    value: {pattern: 'value=(?P<value>[0-9.]+)', unit: s}
"""


def test_plots_render(service: Any, browser_context: Any, tmp_path: Path) -> None:
    env = {**os.environ, "HC_INSTANCE": str(service.instance)}
    path = tmp_path / "t.yaml"
    path.write_text(TEMPLATE)
    for command in (["template", "import", str(path)], ["test", "start", "robot-plots"]):
        done = subprocess.run([*_hc(), *command], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 60
    while requests.get(f"{service.url}/api/v1/jobs?state=succeeded", timeout=5).json()["total"] < 4:
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.5)
    test_id = requests.get(f"{service.url}/api/v1/tests", timeout=5).json()["items"][0]["id"]
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for url, plots in (("/overview", 2), ("/queues/local", 1), (f"/tests/{test_id}", 2), ("/robot", 0)):
        page.goto(service.url + url)
        page.wait_for_load_state("load")
        if plots:
            page.wait_for_selector(".hc-plot .uplot canvas")
        assert page.locator(".hc-plot .uplot").count() >= plots, url
        if os.environ.get("HC_TEST_SCREENSHOTS"):
            name = url.strip("/").replace("/", "-")
            page.screenshot(path=str(Path(os.environ["HC_TEST_SCREENSHOTS"], f"robot-{name}.png")), full_page=True)
    assert page.locator('.tile[data-queue="local"]').count() == 1
    page.goto(service.url + "/queues/local")
    page.wait_for_selector(".hc-plot .uplot canvas")
    assert "UTC" in page.locator(".hc-plot .u-legend").first.inner_text()  # anonymous: UTC

    # a user's display zone reaches the plots' time axis (and legend), the tables too
    page.goto(f"{service.url}/login")
    page.fill("#username", service.admin)
    page.fill("#password", service.password)
    page.click("#login")
    page.goto(f"{service.url}/account")
    page.select_option("#timezone", "America/Chicago")
    page.click("#save-zone")
    page.goto(f"{service.url}/queues/local")
    page.wait_for_selector(".hc-plot .uplot canvas")
    assert "America/Chicago" in page.locator(".hc-plot .u-legend").first.inner_text()
    assert "America/Chicago" in page.locator("main").inner_text()
    assert errors == []

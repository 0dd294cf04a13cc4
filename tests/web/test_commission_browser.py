"""In real Chromium: the queue page's Commission button, the commissioning page, and every plot
of a probe's report page and of its exported HTML file drawing its data.

The report's histograms once drew empty axes (the page passed no bin width, so every bar's
centre was NaN): the check reads the drawn pixels of each plot, not only that a canvas exists.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.web.conftest import _hc

pytestmark = pytest.mark.browser

#: the colour of the first series (hc-plots.js COLORS[0]); the report's only queue draws in it
FIRST_SERIES = (0x17, 0x5C, 0xD3)
COUNT_SERIES_PIXELS = """([r, g, b]) => Array.from(document.querySelectorAll('.hc-plot')).map(el => {
  const canvas = el.querySelector('canvas');
  if (!canvas) return -1;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4)
    if (Math.abs(data[i] - r) < 24 && Math.abs(data[i + 1] - g) < 24 && Math.abs(data[i + 2] - b) < 24
        && data[i + 3] > 200) n++;
  return n;
})"""


def _drawn(page: Any) -> list[int]:
    page.wait_for_selector(".hc-plot .uplot canvas")
    return page.evaluate(COUNT_SERIES_PIXELS, list(FIRST_SERIES))


def test_commission_button_and_report_plots(browser_context: Any, service: Any, tmp_path: Path,
                                           mpi_installed: None) -> None:
    page = browser_context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{service.url}/login")
    page.fill("#username", service.admin)
    page.fill("#password", service.password)
    page.click("#login")
    page.goto(f"{service.url}/queues/local")
    page.click("#commission-queue")
    page.wait_for_url(re.compile(r"/commission/[0-9a-f]+$"))
    page.wait_for_selector("#commission-verdict:text-matches('passed|failed')", timeout=180_000)
    assert page.inner_text("#commission-verdict") == "passed", page.inner_text("#commission-probes")
    for probe, verdict in (("node", "pass"), ("mpi", "pass"), ("gpu", "not applicable"), ("cvmfs", "not applicable")):
        assert page.get_attribute(f"tr[data-probe='{probe}']", "data-verdict") == verdict

    page.click("tr[data-probe='cpu-benchmark'] a")
    page.wait_for_url(re.compile(r"/tests/\d+/report$"))
    report_url = page.url
    drawn = _drawn(page)
    plots = page.locator(".hc-plot").count()
    assert plots >= 4, "queue wait, run time, CPU efficiency and the probe's metrics"
    assert len(drawn) == plots and all(n > 20 for n in drawn), f"plots without drawn bars: {drawn}"

    html = tmp_path / "report.html"
    html.write_bytes(page.request.get(report_url + ".html").body())
    page.goto(html.as_uri())
    exported = _drawn(page)
    assert len(exported) == plots and all(n > 20 for n in exported), f"exported plots without bars: {exported}"
    assert not errors, errors


def test_hc_commission_beside_a_running_service(service: Any) -> None:
    """The CLI drives its own tests as a host of its own while `hc serve` runs on the same
    database; the service shows the result."""
    env = {**os.environ, "HC_INSTANCE": str(service.instance)}
    done = subprocess.run([*_hc(), "commission", "local", "--probes", "node,cpu-benchmark", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert [p["verdict"] for p in data["probes"]] == ["pass", "pass"]
    page = requests.get(f"{service.url}/commission/{data['key']}", timeout=10)
    assert page.status_code == 200 and 'id="commission-verdict">passed' in page.text
    for probe in data["probes"]:  # driven by the command's own host, not the service's
        test = requests.get(f"{service.url}/api/v1/tests/{probe['test']}", timeout=10).json()
        assert ":commission:" in test["host"] and test["state"] == "completed"

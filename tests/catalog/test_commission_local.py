"""``hc catalog`` and ``hc commission`` on the real local node (the ``local`` backend)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from flask import Flask

from hcflask.cli.catalog import catalog_group, commission_command
from tests.conftest import make_app
from tests.factories import make_queue, make_template

#: what this machine has: no GPU, no /cvmfs, no container image configured, no input data yet
ABSENT = {"gpu", "cvmfs", "container", "data-access"}


def _app(tmp_path: Path) -> Flask:
    app = make_app(tmp_path / "instance", JOBS_RESULT_GRACE_SECONDS=5)
    with app.app_context():
        make_queue("local")
    return app


def test_catalog_list_show_install_and_bad_input(tmp_path: Path) -> None:
    app = _app(tmp_path)
    runner = app.test_cli_runner()
    listed = runner.invoke(catalog_group, ["list"])
    assert listed.exit_code == 0
    for name in ("node", "scratch-io", "cpu-benchmark", "container", "gpu", "mpi", "cvmfs", "network", "data-access"):
        assert f"\n{name} " in listed.output
    shown = runner.invoke(catalog_group, ["show", "network"])
    assert shown.exit_code == 0 and "# hc-param:" in shown.output and "name: probe-network" in shown.output
    bad = runner.invoke(catalog_group, ["show", "nope"])
    assert bad.exit_code != 0 and "no probe 'nope'" in bad.output and "known: node" in bad.output
    bad = runner.invoke(catalog_group, ["install", "network", "--set", "NOPE=1"])
    assert bad.exit_code != 0 and "set: no chosen probe has the setting NOPE" in bad.output
    assert "installed" not in bad.output
    bad = runner.invoke(catalog_group, ["install", "network", "--set", "endpoints"])
    assert bad.exit_code != 0 and "expected NAME=value" in bad.output
    ok = runner.invoke(catalog_group, ["install", "network", "--set", "ENDPOINTS=a.site:443 b.site:80",
                                       "--queues", "slurm-*"])
    assert ok.exit_code == 0, ok.output
    exported = runner.invoke(catalog_group, ["list"])
    assert "probe-network        yes" in exported.output
    with app.app_context():
        from sqlalchemy import select

        from hcflask.extensions import db
        from hcflask.models import Template

        template = db.session.scalar(select(Template).where(Template.name == "probe-network"))
        assert template.queues == ["slurm-*"]
        assert "ENDPOINTS='a.site:443 b.site:80'  # hc-param:" in template.workload["script"]


def test_commission_the_local_node(tmp_path: Path, endpoint: str, mpi_installed: None) -> None:
    """Every probe on the local node: pass where the node has the thing, not applicable where not,
    with its metrics; exit 0; the HTML file written."""
    app = _app(tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(catalog_group, ["install", "network", "--set", f"ENDPOINTS={endpoint}"]).exit_code == 0
    html = tmp_path / "commission.html"
    clock = time.monotonic()
    result = runner.invoke(commission_command, ["local", "--json", "--html", str(html), "--timeout", "600"])
    seconds = time.monotonic() - clock
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    verdicts = {p["probe"]: p["verdict"] for p in data["probes"]}
    assert verdicts == {name: ("not applicable" if name in ABSENT else "pass") for name in verdicts}, verdicts
    assert len(verdicts) == 9
    metrics = {p["probe"]: {m["metric"]: m["summary"]["median"] for m in p["metrics"] if m["summary"]}
               for p in data["probes"]}
    assert metrics["node"]["cores_given"] >= 1 and metrics["node"]["memory_given_mb"] > 0
    assert metrics["cpu-benchmark"]["score_per_core"] > 0
    assert {"write_mb_s", "read_mb_s", "creates_per_s"} <= set(metrics["scratch-io"])
    assert metrics["mpi"]["latency_us"] > 0 and metrics["mpi"]["bandwidth_mb_s"] > 0
    assert metrics["network"]["connect_seconds"] < 5
    reasons = {p["probe"]: p["reasons"][0]["reason"] for p in data["probes"] if p["verdict"] == "not applicable"}
    assert reasons["gpu"].startswith("no GPU on") and reasons["cvmfs"].startswith("no /cvmfs")
    assert data["node_facts"]["kernel"].startswith("Linux") and data["node_facts"]["cpu_model"]
    text = html.read_text()
    assert 'data-probe="mpi" data-verdict="pass"' in text and "<script" not in text
    gpu = next(p["test"] for p in data["probes"] if p["probe"] == "gpu")
    with app.test_client() as client:  # the test's report and the API show not-applicable jobs apart
        report = client.get(f"/tests/{gpu}/report").get_data(as_text=True)
        assert 'id="report-not-applicable"' in report and "no GPU on" in report
        api = client.get(f"/api/v1/tests/{gpu}").get_json()
        assert api["jobs"]["not_applicable"] == 1 and api["jobs"]["failed"] == 0
        assert api["jobs"]["fail_percent"] is None
        queue = client.get(f"/api/v1/tests/{gpu}/report").get_json()["queues"][0]
        assert queue["not_applicable"] == 1 and queue["judged"] == 0 and queue["success_rate"] is None
    print(f"\nhc commission local: {seconds:.1f} s; metrics {metrics}")


def test_commission_with_a_stress_template_and_bad_names(tmp_path: Path) -> None:
    """A stress template named in --probes runs with its own ramp; its throughput is reported."""
    app = _app(tmp_path)
    with app.app_context():
        make_template("burst", ["local"], kind="stress", script='sleep 1; echo "hc-ok value=1"',
                      stress={"ramp": [{"at": 0, "in_flight": 2}], "max_jobs": 3})
    runner = app.test_cli_runner()
    bad = runner.invoke(commission_command, ["local", "--probes", "node,nope"])
    assert bad.exit_code != 0 and "probes: 'nope' is neither a probe of the catalogue" in bad.output
    bad = runner.invoke(commission_command, ["nowhere", "--probes", "node"])
    assert bad.exit_code != 0 and "queue: no queue 'nowhere' (known: local)" in bad.output
    html = tmp_path / "c.html"
    result = runner.invoke(commission_command, ["local", "--probes", "node,burst", "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "Stress test burst" in result.output and "in flight asked 2" in result.output
    assert "Commissioning" in result.output and "PASSED" in result.output
    assert "Stress test burst" in html.read_text()
    with app.test_client() as client:  # the queue page links its commissionings
        page = client.get("/queues/local").get_data(as_text=True)
        assert 'id="commissionings"' in page and "/commission/" in page

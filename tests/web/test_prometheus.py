"""A real Prometheus (Debian's package, .ci/install-prometheus.sh) scrapes
/metrics of a closed instance with an API token and stores the rollup counters."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from hcflask.extensions import db
from hcflask.models import ApiToken, Queue, RollupTotal, User, utcnow
from tests.conftest import make_app
from tests.scale_history import finish, new_job, setup


def scrape_token(app: Flask) -> str:
    """The token Prometheus scrapes with: read-only (``scope="read"``), as docs/scale.md says."""
    with app.app_context():
        user = User(username="prometheus")
        user.set_password("not used for scraping")
        db.session.add(user)
        _, token = ApiToken.issue(user, "prometheus scrape", scope="read")
        db.session.commit()
    return token


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    app = make_app(tmp_path / "instance", READ_REQUIRES_LOGIN=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own Prometheus
        return list(json.loads(response.read())["data"]["result"])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_scrapes_the_rollup_counters(served: tuple[Flask, str], tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus needed in CI (.ci/install-prometheus.sh)")
        pytest.skip("prometheus not installed (.ci/install-prometheus.sh)")
    app, target = served
    rng = random.Random(3)  # noqa: S311 - reproducible data
    with app.app_context():
        test = setup(app, queues=2, templates=1)[0]
        queue_id = db.session.scalar(select(Queue.id).where(Queue.name == "q0"))
        for n in range(20):
            finish(new_job(test, queue_id, utcnow() - timedelta(hours=2), n), rng, utcnow() - timedelta(hours=1))
        db.session.commit()
        total = db.session.scalar(select(RollupTotal))
        expected = {o: getattr(total, o) for o in ("succeeded", "failed", "cancelled", "lost")}
    (tmp_path / "token").write_text(scrape_token(app))
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hcflask\n    static_configs: [{{targets: ['{target}']}}]\n"
        f"    authorization: {{type: Bearer, credentials_file: {tmp_path / 'token'}}}\n")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = wait_for(port, 'hc_jobs_total{queue="q0",template="t0"}', len(expected))
        assert {r["metric"]["outcome"]: int(float(r["value"][1])) for r in result} == expected
        assert [r["value"][1] for r in query(port, 'up{job="hcflask"}')] == ["1"]
        assert query(port, 'hc_queue_status{queue="q1",status="online"}')[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for(port: int, promql: str, series: int) -> list[dict[str, Any]]:
    """Poll Prometheus until the series are scraped (it needs a scrape or two)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            result = query(port, promql)
        except OSError:
            result = []
        if len(result) >= series or time.monotonic() > deadline:
            return result
        time.sleep(0.5)

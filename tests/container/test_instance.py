"""``apptainer instance start/stop``: the service in the background, as docs/design.md promises.

Separate from test_contract.py so that its service is stopped first: two
services at once would share the machine's two cores.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from apptainer_runtime import Runtime, free_port, http_get, wait_http_ok

pytestmark = pytest.mark.container


def test_instance_start_serves_and_stop_ends_it(runtime: Runtime, image: Path) -> None:
    instance = runtime.folder("instance-bg")
    port = free_port()
    name = f"hc-{uuid.uuid4().hex[:8]}"
    started = runtime.run(
        "instance", "start", "--bind", f"{instance}:/srv/hc/instance", "--env", f"HC_PORT={port}",
        str(image), name,
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/", 120)
        listed = runtime.run("instance", "list")
        assert name in listed.stdout, listed.stdout
        assert (instance / "hc.toml").exists()
    finally:
        stopped = runtime.run("instance", "stop", name)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 30
    while True:
        try:
            http_get(f"http://127.0.0.1:{port}/", timeout=2)
        except OSError:
            break
        assert time.monotonic() < deadline, "the service still answers after instance stop"
        time.sleep(0.5)
    assert name not in runtime.run("instance", "list").stdout

"""Session fixtures: one real XRootD server and one real Rucio server with a
dataset of 10 files on an RSE served by that XRootD (see data_servers.py).

Without the packages (``.ci/install-rucio.sh``) the tests are skipped,
except in CI (``CI=true``), where that is a failure.  The servers' start-up
times are printed at the end of the run (docs/data.md "Figures" quotes them
from CI).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from data_servers import XRD_FAST, RucioServer, XRootDServer, add_rse, load_dataset, missing

SCOPE = "hctest"
DATASET = "hc_test_input"
RSE = "XRD_DISK"
#: what took how long to start (seconds), for the run's summary
STARTS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STARTS:
        terminalreporter.write_sep("-", "data servers' start-up")
        for what, seconds in STARTS.items():
            terminalreporter.write_line(f"{what}: {seconds:.2f} s")


def _need() -> None:
    why = missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"Rucio and XRootD needed in CI: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def xrootd() -> Iterator[XRootDServer]:
    _need()
    server = XRootDServer()
    try:
        server.start()
        STARTS["XRootD: listening"] = server.start_seconds
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def rucio_server(postgres: Any) -> Iterator[RucioServer]:
    _need()
    server = RucioServer(postgres.create_database())
    before = os.environ.get("RUCIO_CONFIG")
    try:
        server.configure()
        os.environ["RUCIO_CONFIG"] = str(server.client_config)
        server.bootstrap()
        server.start()
        STARTS["Rucio: schema and root account"] = server.bootstrap_seconds
        STARTS["Rucio: gunicorn answering /ping"] = server.start_seconds
        yield server
    finally:
        server.close()
        if before is None:
            os.environ.pop("RUCIO_CONFIG", None)
        else:
            os.environ["RUCIO_CONFIG"] = before


@pytest.fixture(scope="session")
def dataset(rucio_server: RucioServer, xrootd: XRootDServer) -> dict[str, Any]:
    """scope:name of 10 files of 64 KiB at RSE ``XRD_DISK`` (root:// through ``xrootd``)."""
    clock = time.monotonic()
    rucio = rucio_server.client()
    rucio.add_scope("root", SCOPE)
    add_rse(rucio, RSE, xrootd)
    folder = Path(tempfile.mkdtemp(prefix="hc-upload-"))
    paths = load_dataset(rucio, RSE, SCOPE, DATASET, folder)
    STARTS["Rucio: scope, RSE, 10 files uploaded into a dataset"] = time.monotonic() - clock
    return {"did": f"{SCOPE}:{DATASET}", "rse": RSE, "names": sorted(p.name for p in paths), "scope": SCOPE,
            "rucio": rucio}


@pytest.fixture
def xrd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short XRootD client timeouts for the jobs (the local backend passes our environment on)."""
    for key, value in XRD_FAST.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def rucio_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``rucio`` command of rucio-clients on the jobs' PATH (stage-out runs it; a job node has it
    from its image or its own install, the test machine from hcflask's environment)."""
    where = Path(sys.executable).parent
    if not (where / "rucio").exists() and shutil.which("rucio") is None:
        pytest.fail("the rucio command of rucio-clients is missing (pip install .[data])")
    monkeypatch.setenv("PATH", f"{where}{os.pathsep}{os.environ.get('PATH', '')}")

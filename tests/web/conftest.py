"""Fixtures for the browser test: the real service and a real headless Chromium.

The service is started exactly as an admin starts it (`hc user add`, `hc queue
add`, `hc serve`) in its own process group, so the test also covers gunicorn,
the instance lock and the scheduler ticks.  Chromium is the Debian package,
never a downloaded browser (``HC_TEST_CHROMIUM`` points elsewhere); in CI
(``CI=true``) a missing Chromium or Playwright is a failure, elsewhere a skip.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

CHROMIUM = Path(os.environ.get("HC_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]
ADMIN = "admin"
ADMIN_PASSWORD = "browser test password"
START_TIMEOUT = 30.0


@dataclass
class Service:
    """A running `hc serve`: where it listens and where it logs."""

    url: str
    admin: str
    password: str
    instance: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the browser test must run; see .ci/install-base.sh)")
    pytest.skip(reason)


def _hc() -> list[str]:
    """The `hc` of this interpreter's environment (tox's venv, or the current one)."""
    beside = Path(sys.executable).with_name("hc")
    found = str(beside) if beside.exists() else shutil.which("hc")
    assert found, "the hc command is not installed (pip install -e .)"
    return [found]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the whole process group (gunicorn, workers and their job children)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def start_service(base: Path, commands: list[list[str]], hc_toml: str = "", port: int | None = None) -> Service:
    """`hc serve` on a free port (or ``port``) with 1-second ticks, after the ``hc`` setup commands
    and with ``hc_toml`` appended to the instance's hc.toml; stop it with :func:`stop_service`."""
    instance = base / "instance"
    env = {
        **os.environ, "HC_INSTANCE": str(instance), "HC_TICK_SECONDS": "1", "HC_DEMO": "false",
        "HC_PASSWORD": ADMIN_PASSWORD, "HC_JOBS_RESULT_GRACE_SECONDS": "0",
    }
    subprocess.run([*_hc(), "init", "--no-demo"], env=env, capture_output=True, timeout=60, check=True)
    if hc_toml:
        with (instance / "hc.toml").open("a") as config:
            config.write("\n" + hc_toml)
    for command in commands:
        done = subprocess.run([*_hc(), *command], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"hc {' '.join(command)}: {done.stdout}{done.stderr}"
    port = port or _free_port()
    log = base / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*_hc(), "serve", "--bind", f"127.0.0.1:{port}"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Service(f"http://127.0.0.1:{port}", ADMIN, ADMIN_PASSWORD, instance, log, process)
    try:
        _wait_healthy(served)
    except BaseException:
        stop_service(served)
        raise
    return served


def stop_service(served: Service) -> None:
    _stop(served.process)
    print(f"--- end of {served.log} (shown when a test failed) ---\n{served.log_tail()}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`hc serve` on a free port with 1-second ticks, an admin and a `local` queue, no demo."""
    served = start_service(tmp_path_factory.mktemp("served"),
                           [["user", "add", ADMIN, "--role", "admin"], ["queue", "add", "local", "--backend", "local"]])
    try:
        yield served
    finally:
        stop_service(served)


@pytest.fixture(scope="module")
def sso_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Any]]:
    """`hc serve` signing in through a real OIDC provider (npm oidc-provider, tests/access/oidc_server.py),
    with a local admin, a `local` queue and a template; the provider knows the service's callback."""
    from tests.access import oidc_server

    reason = oidc_server.missing()
    if reason:
        _missing(reason)
    base = tmp_path_factory.mktemp("sso")
    port = _free_port()
    provider = oidc_server.OidcServer(base, app_url=f"http://127.0.0.1:{port}").start()
    (base / "oidc-secret").write_text(provider.client_secret)
    toml = (f'[auth.oidc]\nissuer = "{provider.issuer}"\nclient_id = "hcflask"\n'
            f'client_secret_file = "{base / "oidc-secret"}"\nlabel = "Test IdP"\nclock_skew = 5\n'
            f'[auth.oidc.roles]\nadmin = ["hc-admins"]\noperator = ["hc-operators"]\nviewer = ["hc-viewers"]\n')
    try:
        served = start_service(base, [["user", "add", ADMIN, "--role", "admin"],
                                      ["queue", "add", "local", "--backend", "local"]], toml, port)
    except BaseException:
        provider.stop()
        raise
    try:
        yield served, provider
    finally:
        stop_service(served)
        provider.stop()


def _wait_healthy(served: Service) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert served.process.poll() is None, f"hc serve exited early:\n{served.log_tail()}"
        try:
            health = requests.get(f"{served.url}/healthz", timeout=2)
            if health.status_code == 200 and health.json()["ticks"].get("core", {}).get("finished_at"):
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still warming up
            pass
        time.sleep(0.3)
    pytest.fail(f"hc serve did not become healthy within {START_TIMEOUT:.0f} s:\n{served.log_tail()}")


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh headless Chromium profile (the Debian binary), closed at the end."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (Debian packages chromium and chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright for Python is not installed (the `test` extra)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()

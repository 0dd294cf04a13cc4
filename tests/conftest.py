"""Fixtures every test can use: a fresh app on its own instance folder and
SQLite database, a client, a CLI runner, and a logged-in admin."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy import event

from hcflask import create_app
from hcflask.extensions import db
from hcflask.models import ApiToken, User

ADMIN_PASSWORD = "correct horse battery"


def make_app(instance: Path, **overrides: Any) -> Flask:
    config = {
        "INSTANCE_PATH": instance,
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DEMO": False,
        "HOST_NAME": "testhost",
        "INSTANCE_NAME": "t" + instance.parent.name[-6:].replace("_", ""),
        "JOBS_RESULT_GRACE_SECONDS": 0,
        "BACKENDS": {"local": {"slots": 4}, "slurm": {}, "panda": {}},
        **overrides,
    }
    app = create_app(config)
    (instance / "jobs").mkdir(parents=True, exist_ok=True)
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
    return app


def terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a test server process: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def kill_local_jobs(instance: Path) -> None:
    """Stop every local job a test left running (each runs in its own session: the wrapper,
    its payload's process group and the payload's children)."""
    from hcflask.backends.local import signal_sessions

    pids = []
    for pidfile in instance.glob("jobs/*/*/pid"):
        try:
            pids.append(int(pidfile.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    signal_sessions(pids, signal.SIGKILL)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path / "instance")
    yield app
    kill_local_jobs(tmp_path / "instance")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def csrf_token(client: FlaskClient, url: str = "/login") -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, f"no CSRF token on {url}"
    return match.group(1)


@pytest.fixture
def admin(app: Flask) -> User:
    with app.app_context():
        user = User(username="admin", role="admin")
        user.set_password(ADMIN_PASSWORD)
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
    return user


@pytest.fixture
def admin_client(client: FlaskClient, admin: User) -> FlaskClient:
    token = csrf_token(client)
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def api_token(app: Flask, admin: User) -> str:
    with app.app_context():
        user = db.session.get(User, admin.id)
        _, token = ApiToken.issue(user, "tests")
        db.session.commit()
    return token


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server (skipped where it is not installed, failed in CI)."""
    from tests.postgres import PostgresServer, missing

    why = missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL needed in CI: {why}")
        pytest.skip(why)
    # not under pytest's private tmp folder: the postgres user must reach it
    base = Path(tempfile.mkdtemp(prefix="hc-postgres-"))
    server = PostgresServer(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements ``app`` runs inside the block (for tests of query counts)."""
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def endpoint() -> Iterator[str]:
    """host:port of a real TCP server on this machine (accepts and closes): the network probe's."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write, root included: a read-only tmpfs (needs root to mount)."""
    path = tmp_path / "ro-scratch"
    path.mkdir()
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("a read-only mount needs root")
        pytest.skip("a read-only mount needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def mpi_installed() -> None:
    """The mpi probe builds with the node's mpicc (OpenMPI, .ci/install-probes.sh)."""
    if shutil.which("mpicc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpicc is missing: .ci/install-probes.sh installs OpenMPI")
        pytest.skip("mpicc is missing (Debian openmpi-bin and libopenmpi-dev, .ci/install-probes.sh)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the files with a test marked ``slow`` go first.

    tox runs ``--dist loadfile --no-loadscope-reorder``: a file stays on one worker (its module
    fixtures start once) and files are handed out in this order.  xdist's own order (most tests
    first) left the files of one or two long tests (the kill -9 soak, the OpenAPI fuzzing, the
    clock skew) for the end, each running alone while the other workers sat idle.  Only the order
    changes, on every worker the same, and never without xdist.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: files stay whole, in their order

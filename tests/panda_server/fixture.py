"""pytest fixtures: one real PanDA server per session, and a per-test SQL-error check.

``panda_server`` starts everything (see :mod:`server`) the first time a test
asks for it and stops it at the end of the session.  Without the server's
virtualenv (``.ci/install-panda.sh``) the tests are skipped, except in CI
(``CI=true``), where that is a failure.  ``panda`` is the same server for
one test, which then fails if the server hit any SQL error meanwhile: a
missing table or column does not only log, it breaks the transaction around
it (jobs stuck in ``holding``, refused updates), so it must never pass.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .server import DEFAULT_VENV, PandaTestServer


@pytest.fixture(scope="session")
def panda_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PandaTestServer]:
    if not (DEFAULT_VENV / "bin" / "gunicorn").exists():
        why = f"panda-server is not installed in {DEFAULT_VENV} (run .ci/install-panda.sh)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    server = PandaTestServer(tmp_path_factory.mktemp("panda"))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def panda(panda_server: PandaTestServer) -> Iterator[PandaTestServer]:
    before = len(panda_server.sql_errors())
    if panda_server.web is None:
        panda_server.start_web()
    yield panda_server
    errors = panda_server.sql_errors()[before:]
    assert not errors, "the PanDA server hit SQL errors:\n" + "\n".join(errors)

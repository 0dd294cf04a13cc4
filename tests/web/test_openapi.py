"""The API against its own OpenAPI document, with schemathesis (``--checks all``).

The app is served for real (a werkzeug server on a free port, one thread per
request) and ``st run`` fuzzes ``/api/v1/openapi.json`` twice: without a token
(reads, and writes refused with 401) and with an admin token (writes too).
Every check must pass: no 5xx, every status and body as documented, valid
input accepted, invalid input refused, OPTIONS and 405 truthful.  Example
counts are bounded so the run takes about a minute.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from hcflask.extensions import db
from hcflask.models import ApiToken, Template, User
from tests.conftest import make_app

EXAMPLES = int(os.environ.get("HC_SCHEMATHESIS_EXAMPLES", "12"))
#: The one rule OpenAPI cannot state: ``from``/``to`` of an overview depend on each other (``to`` not
#: before ``from``, at most ``[reports] max_days`` apart), so a day pair each valid on its own may get
#: the documented 400 naming ``from``.  Likewise /compare: ``tests`` must name existing tests with
#: enough succeeded jobs, ``queues`` queues of that one test, ``metric`` one they report; a robot replay's
#: ``to`` must follow ``from`` (at most 31 days, 500 passes) and ``set`` name a [robot] key; a new Slurm
#: queue's ``extra_args`` must be options sbatch itself would read (its getopt rules), and a
#: new queue's name must be free (409).  Every other
#: operation must accept all schema-valid input.
CONFIG = """
[[operations]]
include-path-regex = "^/(overview/|compare$|robot/replay$|queues$)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409"]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Flask]]:
    """The app on a free port, with a queue, a template and an admin token; Slurm unreachable here."""
    base = tmp_path_factory.mktemp("openapi")
    app = make_app(base / "instance", BACKENDS={"local": {"slots": 1}, "panda": {},
                                                 "slurm": {"sbatch": str(base / "no-sbatch")}})
    with app.app_context():
        from hcflask.engine.actions import create_queue, save_template

        user = User(username="admin", role="admin")
        user.set_password("schemathesis admin")
        db.session.add(user)
        _, token = ApiToken.issue(user, "schemathesis")
        db.session.commit()
        create_queue("local", "local")
        save_template({"name": "t1", "queues": ["local"], "workload": {"script": "true"}})
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", token, app
    server.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _st() -> str:
    beside = Path(sys.executable).with_name("st")
    found = str(beside) if beside.exists() else shutil.which("st")
    assert found, "schemathesis is not installed (pip install -e '.[test]')"
    return found


@pytest.mark.slow
@pytest.mark.parametrize("with_token", [False, True], ids=["anonymous", "admin-token"])
def test_the_api_keeps_its_openapi_document(served: tuple[str, str, Flask], with_token: bool,
                                            tmp_path: Path) -> None:
    url, token, app = served
    headers = ["-H", f"Authorization: Bearer {token}"] if with_token else []
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    done = subprocess.run(
        [_st(), "run", f"{url}/api/v1/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--seed", "11", "--no-color",
         "--request-timeout", "30", "--suppress-health-check", "all", *headers],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    (Path(os.environ.get("HC_SCHEMATHESIS_LOG", tmp_path)) / f"st-{with_token}.log").write_text(done.stdout)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-2000:]
    with app.app_context():
        assert db.session.query(Template).count() >= 1

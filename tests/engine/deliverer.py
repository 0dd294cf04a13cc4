"""A second deliverer for the tests: ``python -m tests.engine.deliverer INSTANCE SECONDS`` runs the
actions tick's :func:`~hcflask.engine.notify.deliver` in its own process (its own app, its own
database connections, the instance's hc.toml) for SECONDS, as another host's service would."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from hcflask import create_app
from hcflask.engine.notify import deliver


def main(instance: str, seconds: str) -> None:
    app = create_app({"INSTANCE_PATH": Path(instance), "HOST_NAME": "deliverer"})
    deadline = time.monotonic() + float(seconds)
    with app.app_context():
        while True:
            print(deliver(), flush=True)
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:])

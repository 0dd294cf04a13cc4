"""``hc serve``: gunicorn with the scheduler in one of its workers.

Each worker builds its own app after the fork and keeps trying for the
scheduler (see :func:`hcflask.engine.service.scheduler.keep_trying`); the instance
lock lets exactly one of them run it at a time.  Before gunicorn starts, the
master claims this service's ``host_name`` (a second service with a live
lease on it is refused) and hands its service id to the workers in
``HC_SERVICE_ID``.  No control socket, pid file or other file outside the
instance folder, so the service runs from a read-only image.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from hcflask.engine.service import scheduler

log = logging.getLogger("hcflask.serve")


def _post_worker_init(worker: Any) -> None:
    from hcflask.web import warm

    warm(worker.wsgi)
    if worker.app.hc_scheduler:
        scheduler.keep_trying(worker.wsgi)


def _worker_exit(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        scheduler.stop(app)


class Service(BaseApplication):
    def __init__(self, options: dict[str, Any], run_scheduler: bool) -> None:
        self.options = options
        self.hc_scheduler = run_scheduler
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from hcflask import create_app

        return create_app()


def admin_hint(instance: str) -> str:
    """How to add an admin, in the words of where we run (plain, or in hc.sif)."""
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return f"apptainer run --bind <your instance folder>:{instance} hc.sif user add <name> --role admin"
    return "hc user add <name> --role admin"


def bind_problem(bind: str) -> str | None:
    """Why ``bind`` cannot be listened on (one line for the admin), or None.

    Checked before gunicorn starts: gunicorn would print its banner, retry
    five times and exit without saying what to do.
    """
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - gunicorn's own default
    if not port.isdigit():
        return f"--bind {bind!r}: expected HOST:PORT"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            return (f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another hc serve running?); "
                    "choose another port with --bind HOST:PORT or HC_PORT=PORT")
    return None


def serve(bind: str, workers: int, threads: int, scheduler: bool, instance: str,
          max_requests: int = 0) -> None:
    """Run gunicorn in the foreground until it is stopped."""
    host, _, port = bind.rpartition(":")
    shown = host if host not in ("", "0.0.0.0") else "127.0.0.1"  # noqa: S104 - display only
    logging.getLogger("hcflask").setLevel(logging.INFO)
    print(f"hcflask serving http://{shown}:{port}/  (instance {instance})", flush=True)
    print(f"create the first admin with: {admin_hint(instance)}", flush=True)
    options = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        "graceful_timeout": 20,
        "accesslog": str(Path(instance, "logs", "access.log")),
        "errorlog": "-",
        "loglevel": "info",
        "control_socket_disable": True,
        "max_requests": max_requests,
        "max_requests_jitter": max_requests // 10,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
    }
    Service(options, scheduler).run()

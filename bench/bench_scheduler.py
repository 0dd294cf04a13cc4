"""The scheduler under stress, on a real ``hc serve`` (gunicorn, SQLite, the local backend).

1. Reloads: N HUPs in a row (one every ``--hup-gap`` seconds), then how many
   schedulers run, and how long until exactly one runs again.
2. A webhook that accepts and never answers: the gaps between monitor ticks
   while each delivery attempt hangs for ``action_timeout``, next to the gaps
   before the webhook was asked.

Run from a checkout: ``python bench/bench_scheduler.py``; prints two tables.
"""
from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hcflask.engine import actions  # noqa: E402
from hcflask.engine.notify import enqueue, event_data  # noqa: E402
from hcflask.extensions import db  # noqa: E402
from hcflask.models import Delivery, RobotEvent, TickRun  # noqa: E402
from tests.conftest import kill_local_jobs, make_app  # noqa: E402
from tests.factories import make_queue, make_template  # noqa: E402
from tests.service import Hanging, Served, write_config  # noqa: E402


def _setup(instance: Path, extra: str = "") -> object:
    write_config(instance, extra=extra)
    app = make_app(instance)
    with app.app_context():
        make_queue("q1")
        actions.start_test(make_template("t", jobs_in_flight=2, script='echo "hc-ok value=1"'), actor="bench")
    return app


def hups(base: Path, count: int, gap: float) -> list[tuple[str, object]]:
    instance = base / "hup"
    _setup(instance)
    service = Served(instance, workers=2).start()
    try:
        service.wait(service.schedulers, "a scheduler")
        for _ in range(count):
            service.signal(signal.SIGHUP)
            time.sleep(gap)
        sent = time.monotonic()
        service.wait(lambda: len(service.schedulers()) == 1, "one scheduler after the HUPs")
        settled = time.monotonic() - sent
        most = 0
        end = time.monotonic() + 15
        while time.monotonic() < end:  # watch for a second scheduler for a while
            most = max(most, len(service.schedulers()))
            time.sleep(0.2)
        starts = service.text().count("scheduler started (pid")
        return [("HUPs sent", count), ("gap between HUPs (s)", gap),
                ("schedulers started in all", starts),
                ("seconds from the last HUP to exactly one scheduler", round(settled, 1)),
                ("most schedulers at once in the 15 s after", most),
                ("schedulers running at the end", len(service.schedulers()))]
    finally:
        service.stop()
        kill_local_jobs(instance)


def _monitor_gaps(app: object, seconds: float) -> list[float]:
    seen: list[datetime] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with app.app_context():  # type: ignore[attr-defined]
            row = db.session.scalar(select(TickRun).where(TickRun.name == "monitor"))
            if row is not None and row.finished_at and (not seen or row.finished_at != seen[-1]):
                seen.append(row.finished_at)
        time.sleep(0.05)
    return [(b - a).total_seconds() for a, b in zip(seen, seen[1:], strict=False)]


def webhook(base: Path, seconds: float, timeout: float) -> list[tuple[str, object]]:
    hook = Hanging()
    instance = base / "hook"
    app = _setup(instance, extra=(
        f"[robot]\naction_timeout = {timeout}\naction_backoff_seconds = 0.5\naction_retries = 100\n"
        f'[robot.actions.default]\nalert = [{{type = "webhook", url = "{hook.url}"}}]\n'))
    service = Served(instance, workers=2).start()
    try:
        service.wait(service.schedulers, "a scheduler")
        time.sleep(3)
        before = _monitor_gaps(app, seconds)
        with app.app_context():  # type: ignore[attr-defined]
            event = RobotEvent(kind="alert_open", rule="outage", message="bench alert")
            db.session.add(event)
            enqueue(event, event_data(event))
            db.session.commit()
        during = _monitor_gaps(app, seconds)
        with app.app_context():  # type: ignore[attr-defined]
            attempts = db.session.scalars(select(Delivery)).one().attempts
        rows: list[tuple[str, object]] = [("monitor interval (s)", 1.0), ("webhook action_timeout (s)", timeout),
                                          ("webhook connections held during the run", len(hook.held)),
                                          ("delivery attempts recorded", attempts)]
        for label, gaps in (("before", before), ("while the webhook hangs", during)):
            rows += [(f"monitor ticks {label}", len(gaps) + 1),
                     (f"mean gap {label} (s)", round(statistics.mean(gaps), 2) if gaps else "-"),
                     (f"max gap {label} (s)", round(max(gaps), 2) if gaps else "-")]
        return rows
    finally:
        service.stop()
        hook.close()
        kill_local_jobs(instance)


def table(title: str, rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hups", type=int, default=10)
    parser.add_argument("--hup-gap", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to watch the monitor tick")
    parser.add_argument("--timeout", type=float, default=5.0, help="the webhook's action_timeout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hc-bench-sched-") as tmp:
        table(f"{args.hups} HUPs in a row", hups(Path(tmp), args.hups, args.hup_gap))
        table("monitor ticks while a webhook hangs", webhook(Path(tmp), args.seconds, args.timeout))


if __name__ == "__main__":
    main()

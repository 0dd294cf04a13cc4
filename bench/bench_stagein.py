"""hcflask's stage-in vs bare ``xrdcp`` on the same files of the same real XRootD server (run by hand, as root).

    python3 bench/bench_stagein.py [--files 10] [--mb 50] [--rounds 3]

Starts PostgreSQL, XRootD and the Rucio server as the tests do
(tests/data/data_servers.py, ``.ci/install-rucio.sh``), uploads ``--files``
random files of ``--mb`` MB each into a Rucio dataset, then per round, in
alternating order:

* **bare xrdcp**: one ``xrdcp --nopbar --force`` per file, one after the other, into a scratch
  folder (the issue's reference);
* **bare 1 xrdcp**: one ``xrdcp`` for all files (no checksum), the cheapest bare read;
* **hcflask**: one local job of a template reading the dataset with
  ``files_per_job`` = all files, ``access: copy``: the wrapper's stage-in
  (one xrdcp for all files printing the adler32 it computed while writing,
  compared with Rucio's) -- its ``input_bytes / stagein_seconds`` metrics.

A warm-up read first puts the files in the page cache, so all read the same
way.  The order of the methods rotates from round to round.  Prints MB/s per
round and method, the medians, and hcflask's ratio to each bare method (goal:
at least 0.95x of bare xrdcp).  On a shared machine the rounds vary: the
median of the per-round ratios is the steadier figure; the load average is
printed with them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "data")]

from data_servers import RucioServer, XRootDServer, add_rse, load_dataset  # noqa: E402
from flask import Flask  # noqa: E402
from sqlalchemy import select  # noqa: E402

from hcflask import create_app  # noqa: E402
from hcflask.engine import actions  # noqa: E402
from hcflask.engine.jobs.monitor import monitor_tick  # noqa: E402
from hcflask.engine.jobs.submission import submission_tick  # noqa: E402
from hcflask.engine.service.core import core_tick  # noqa: E402
from hcflask.extensions import db  # noqa: E402
from hcflask.models import Job, Template  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

RSE, SCOPE, DATASET = "BENCH_DISK", "bench", "bench_input"


def bare(urls: list[str], scratch: Path, one_process: bool = False) -> tuple[float, int]:
    """Seconds and bytes of fetching every URL with bare xrdcp, one after the other (or all in one xrdcp)."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    started = time.monotonic()
    if one_process:
        subprocess.run(["xrdcp", "--nopbar", "--force", *urls, f"{scratch}/"], check=True)  # noqa: S603,S607
    for i, url in enumerate([] if one_process else urls):
        subprocess.run(["xrdcp", "--nopbar", "--force", url, str(scratch / f"{i}.root")], check=True)  # noqa: S603,S607
    seconds = time.monotonic() - started
    size = sum(p.stat().st_size for p in scratch.iterdir())
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds, size


def hcflask_round(app: Flask, n: int) -> tuple[float, int]:
    """Seconds and bytes of one job's stage-in (its own metrics); each round is a new test of one job."""
    with app.app_context():
        template = db.session.scalar(select(Template).where(Template.name == "stagein"))
        test = actions.start_test(template, actor="bench")
        core_tick(app)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            submission_tick(app)
            monitor_tick(app)
            db.session.expire_all()
            job = db.session.scalar(select(Job).where(Job.test_id == test.id, Job.judged_at.is_not(None)))
            if job is not None:
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the hcflask job did not finish within 600 s")
        assert job.state == "succeeded", job.failure_reason
        metrics = {m.name: m.value for m in job.metrics}
        assert len(job.inputs or []) == n
        return metrics["stagein_seconds"], int(metrics["input_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hc-bench-stagein-"))
    base.chmod(0o755)
    pg = PostgresServer(base / "pg")
    (base / "pg").mkdir()
    xrootd = XRootDServer()
    rucio: RucioServer | None = None
    try:
        pg.start()
        xrootd.start()
        rucio = RucioServer(pg.create_database())
        rucio.configure()
        os.environ["RUCIO_CONFIG"] = str(rucio.client_config)
        rucio.bootstrap()
        rucio.start()
        print(f"servers: XRootD {xrootd.start_seconds:.2f} s, Rucio schema {rucio.bootstrap_seconds:.1f} s "
              f"+ answering /ping {rucio.start_seconds:.1f} s")
        client = rucio.client()
        client.add_scope("root", SCOPE)
        add_rse(client, RSE, xrootd)
        load_dataset(client, RSE, SCOPE, DATASET, base / "upload", files=args.files, size=args.mb * 1_000_000,
                     prefix="bench")
        shutil.rmtree(base / "upload")
        urls = sorted(u for r in client.list_replicas([{"scope": SCOPE, "name": DATASET}], rse_expression=RSE,
                                                      schemes=["root"]) for u in r["pfns"])
        (base / "instance" / "jobs").mkdir(parents=True)
        app = create_app({"INSTANCE_PATH": base / "instance", "TESTING": True, "SECRET_KEY": "bench", "DEMO": False,
                          "HOST_NAME": "bench", "INSTANCE_NAME": "bench", "JOBS_RESULT_GRACE_SECONDS": 0,
                          "BACKENDS": {"local": {"slots": 1}, "slurm": {}, "panda": {}}, **rucio.hc_config()})
        with app.app_context():
            db.create_all()
            actions.create_queue("bench-local", "local", {"rse": RSE})
            actions.save_template({
                "name": "stagein", "queues": ["bench-local"], "max_jobs": 1, "workload": {"script": "true"},
                "inputs": {"dataset": f"{SCOPE}:{DATASET}", "files_per_job": args.files, "protocols": ["root"]}})
        bare(urls, base / "warm")  # page cache
        rows: dict[str, list[float]] = {"bare xrdcp": [], "bare 1 xrdcp": [], "hcflask": []}
        methods = list(rows)
        loads = []
        for round_ in range(args.rounds):
            order = methods[round_ % 3:] + methods[:round_ % 3]
            loads.append(os.getloadavg()[0])
            for method in order:
                if method == "hcflask":
                    seconds, size = hcflask_round(app, args.files)
                else:
                    seconds, size = bare(urls, base / "bare", one_process=method == "bare 1 xrdcp")
                rows[method].append(size / seconds / 1e6)
                print(f"round {round_ + 1}  {method:<11} {size / 1e6:8.0f} MB  {seconds:7.2f} s  "
                      f"{size / seconds / 1e6:8.1f} MB/s")
        medians = {m: statistics.median(v) for m, v in rows.items()}
        print(f"\n{'method':<14}{'median MB/s':>12}")
        for method, value in medians.items():
            print(f"{method:<14}{value:>12.1f}")
        print(f"load average (1 min) at the rounds: {' '.join(f'{x:.1f}' for x in loads)}")
        for ref in ("bare xrdcp", "bare 1 xrdcp"):
            # the runs of a round are neighbours in time: their ratio is the least disturbed by other load
            per_round = [h / b for h, b in zip(rows["hcflask"], rows[ref], strict=True)]
            print(f"ratio hcflask / {ref}: {medians['hcflask'] / medians[ref]:.3f} of the medians, "
                  f"{statistics.median(per_round):.3f} median of the rounds (min {min(per_round):.3f}, "
                  f"max {max(per_round):.3f})" + (" (goal >= 0.95)" if ref == "bare xrdcp" else ""))
    finally:
        if rucio is not None:
            rucio.close()
        xrootd.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""hcflask's stage-in vs bare ``xrdcp`` on the same files of the same real XRootD server (run by hand, as root).

    python3 bench/bench_stagein.py [--files 10] [--mb 50] [--rounds 7]

Starts PostgreSQL, XRootD and the Rucio server as the tests do
(tests/data/data_servers.py, ``.ci/install-rucio.sh``), uploads ``--files``
random files of ``--mb`` MB each into a Rucio dataset, then per round, in
alternating order:

* **bare xrdcp**: one ``xrdcp --nopbar --force`` per file, one after the other, into a scratch
  folder (the issue's reference);
* **bare 1 xrdcp**: one ``xrdcp`` for all files (no checksum), the cheapest bare read;
* **bare xrdcp+ck**: one ``xrdcp --cksum adler32:<Rucio's>`` per file: the same work as hcflask's
  stage-in (a copy verified end to end), with bare xrdcp;
* **hcflask**: one local job of a template reading the dataset with
  ``files_per_job`` = all files, ``access: copy``: the wrapper's stage-in
  (one xrdcp for all files printing the adler32 it computed while writing,
  compared with Rucio's) -- its ``input_bytes / stagein_seconds`` metrics.

Like with like: a warm-up read first puts the source files in the page cache,
so all read the same way; every method writes into the same file system
(this folder in the system's temporary one) and its copies are removed
after each run (the bare ones by the bench, hcflask's by the job wrapper once
the payload ended), outside the timed part, so no method leaves dirty pages
to the next one.  While the hcflask job runs, the bench does not run the
service's ticks (it waits for the job's result file, then judges it): in
production the service does not share the worker node with the job, and on
this 2-core machine a tick every 0.2 s took CPU from the job's xrdcp that the
bare runs did not lose (earlier versions ticked throughout).  The order of
the methods rotates from round to round.

Prints MB/s per round and method, the medians, and hcflask's ratio to each
bare method (goal: at least 0.95x of bare xrdcp), and the CPU seconds per GB
of each method's processes (bare: the xrdcp processes; hcflask: the job
wrapper's children, its ``times``), which a loaded machine does not change
much.  On a shared machine the rounds vary with the others' load (one
method's run may meet a burst the next one misses): the median of the
per-round ratios, the best round of each method (the least disturbed, as
``timeit`` takes the minimum) and the ratio of CPU per GB (bare's over
hcflask's: above 1, hcflask spends less) are the steadier figures; the load
average is printed with them.

Then the time from ``hc test start`` to the first job with its input read,
the way an admin gets it: ``hc init``, the ``[rucio]`` section, ``hc queue
add``, ``hc template add`` and ``hc serve`` with the default scheduler
intervals (core 15 s, submission and monitor 5 s), then ``hc test start``
timed to the first job's stage-in end (its ``stagein.json``) and to that job
judged in the database.  ``--first-job N`` repeats it N times (0: skip).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sqlite3
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
from hcflask.backends.jobscript import RESULT, cpu_seconds  # noqa: E402
from hcflask.engine import actions  # noqa: E402
from hcflask.engine.jobs.monitor import monitor_tick  # noqa: E402
from hcflask.engine.jobs.submission import submission_tick  # noqa: E402
from hcflask.engine.service.core import core_tick  # noqa: E402
from hcflask.extensions import db  # noqa: E402
from hcflask.models import Job, Template  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

RSE, SCOPE, DATASET = "BENCH_DISK", "bench", "bench_input"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare(urls: list[str], scratch: Path, one_process: bool = False,
         sums: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Seconds, bytes and CPU seconds of fetching every URL with bare xrdcp, one after the other (or all in
    one xrdcp); with ``sums`` each xrdcp checks the file's adler32 end to end, as hcflask's stage-in does."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    cpu = _children_cpu()
    started = time.monotonic()
    if one_process:
        subprocess.run(["xrdcp", "--nopbar", "--force", *urls, f"{scratch}/"], check=True)  # noqa: S603,S607
    for i, url in enumerate([] if one_process else urls):
        check = ["--cksum", f"adler32:{sums[url]}"] if sums else []
        subprocess.run(["xrdcp", "--nopbar", "--force", *check, url, str(scratch / f"{i}.root")],  # noqa: S603,S607
                       check=True)
    seconds = time.monotonic() - started
    cpu = _children_cpu() - cpu
    size = sum(p.stat().st_size for p in scratch.iterdir())
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds, size, cpu


def hcflask_round(app: Flask, n: int) -> tuple[float, int, float]:
    """Seconds and bytes of one job's stage-in (its own metrics), and the CPU seconds of the wrapper's
    children (the stage-in; the payload is ``true``); each round is a new test of one job."""
    with app.app_context():
        template = db.session.scalar(select(Template).where(Template.name == "stagein"))
        assert template is not None
        test = actions.start_test(template, actor="bench")
        core_tick(app)
        submission_tick(app)  # writes the job and hands it to the local backend, which starts it
        job = db.session.scalar(select(Job).where(Job.test_id == test.id))
        if job is None:
            raise SystemExit("the submission tick made no job (is the Rucio answer empty?)")
        result = Path(job.workdir) / RESULT
        deadline = time.monotonic() + 600
        while not (result.exists() and result.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)  # no tick while the job runs (see the module's docstring)
        cpu = cpu_seconds(json.loads(result.read_text()))
        while time.monotonic() < deadline:
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
        return metrics["stagein_seconds"], int(metrics["input_bytes"]), cpu or 0.0


def _hc(instance: Path, *args: str) -> str:
    hc = Path(sys.executable).with_name("hc")
    done = subprocess.run([str(hc), *args], env={**os.environ, "HC_INSTANCE": str(instance)},  # noqa: S603
                          check=True, capture_output=True, text=True)
    return done.stdout


def first_job(base: Path, rucio: RucioServer, files: int, times: int) -> None:
    """Seconds from ``hc test start`` to the first job's input read, and to that job judged (see the docstring)."""
    instance = base / "served"
    _hc(instance, "init", "--no-demo")
    cfg = rucio.hc_config()
    toml = (instance / "hc.toml").read_text().replace("[rucio] ", (
        f'[rucio]\nhost = "{cfg["RUCIO_HOST"]}"\naccount = "{cfg["RUCIO_ACCOUNT"]}"\n'
        f'username = "{cfg["RUCIO_USERNAME"]}"\npassword = "{cfg["RUCIO_PASSWORD"]}"\n#'), 1)
    (instance / "hc.toml").write_text(toml)
    _hc(instance, "queue", "add", "first-local", "--backend", "local", "-o", f"rse={RSE}")
    doc = base / "first.json"
    doc.write_text(json.dumps({"name": "first", "queues": ["first-local"], "max_jobs": 1,
                               "workload": {"script": 'for f in $HC_INPUT_FILES; do cat "$f" > /dev/null; done'},
                               "inputs": {"dataset": f"{SCOPE}:{DATASET}", "files_per_job": files,
                                          "protocols": ["root"]}}))
    _hc(instance, "template", "add", str(doc))
    port = subprocess.run([sys.executable, "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
                           "print(s.getsockname()[1])"], capture_output=True, text=True, check=True).stdout.strip()
    log = (base / "serve.log").open("wb")
    serve = subprocess.Popen([str(Path(sys.executable).with_name("hc")), "serve", "--bind", f"127.0.0.1:{port}",  # noqa: S603
                              "--workers", "1"], env={**os.environ, "HC_INSTANCE": str(instance)},
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    database = sqlite3.connect(f"file:{instance / 'hc.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        time.sleep(5)  # the scheduler started
        read, judged = [], []
        for _ in range(times):
            before = database.execute("SELECT coalesce(max(id), 0) FROM test").fetchone()[0]
            started = time.time()
            _hc(instance, "test", "start", "first")
            seen = None
            while time.time() - started < 300:
                row = database.execute("SELECT workdir, judged_at FROM job WHERE test_id > ? ORDER BY id LIMIT 1",
                                       (before,)).fetchone()
                info = Path(row[0]) / "stagein.json" if row and row[0] else None
                if seen is None and info is not None and info.exists() and info.stat().st_size:
                    seen = json.loads(info.read_text())["end"] - started
                if seen is not None and row[1] is not None:
                    read.append(seen)
                    judged.append(time.time() - started)
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"no judged job within 300 s:\n{(base / 'serve.log').read_text()[-3000:]}")
        print(f"\nfrom hc test start (default intervals, {files} files of the dataset): first job's input read "
              f"{' '.join(f'{x:.1f}' for x in read)} s (median {statistics.median(read):.1f}), that job judged "
              f"{' '.join(f'{x:.1f}' for x in judged)} s (median {statistics.median(judged):.1f})")
    finally:
        database.close()
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(60)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--first-job", type=int, default=3, help="times to measure hc test start to the first "
                        "job with its input read (0: skip)")
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
        replicas = list(client.list_replicas([{"scope": SCOPE, "name": DATASET}], rse_expression=RSE,
                                             schemes=["root"]))
        sums = {u: r["adler32"] for r in replicas for u in r["pfns"]}
        urls = sorted(sums)
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
        rows: dict[str, list[float]] = {"bare xrdcp": [], "bare 1 xrdcp": [], "bare xrdcp+ck": [], "hcflask": []}
        cpus: dict[str, list[float]] = {m: [] for m in rows}
        methods = list(rows)
        loads = []
        for round_ in range(args.rounds):
            order = methods[round_ % len(methods):] + methods[:round_ % len(methods)]
            loads.append(os.getloadavg()[0])
            for method in order:
                if method == "hcflask":
                    seconds, size, cpu = hcflask_round(app, args.files)
                else:
                    seconds, size, cpu = bare(urls, base / "bare", one_process=method == "bare 1 xrdcp",
                                              sums=sums if method == "bare xrdcp+ck" else None)
                rows[method].append(size / seconds / 1e6)
                cpus[method].append(cpu / size * 1e9)
                print(f"round {round_ + 1}  {method:<13} {size / 1e6:8.0f} MB  {seconds:7.2f} s  "
                      f"{size / seconds / 1e6:8.1f} MB/s  {cpu / size * 1e9:5.2f} CPU s/GB")
        medians = {m: statistics.median(v) for m, v in rows.items()}
        best = {m: max(v) for m, v in rows.items()}
        print(f"\n{'method':<14}{'median MB/s':>12}{'best MB/s':>10}{'CPU s/GB':>10}")
        for method, value in medians.items():
            print(f"{method:<14}{value:>12.1f}{best[method]:>10.1f}{statistics.median(cpus[method]):>10.2f}")
        print(f"load average (1 min) at the rounds: {' '.join(f'{x:.1f}' for x in loads)}")
        for ref in ("bare xrdcp", "bare 1 xrdcp", "bare xrdcp+ck"):
            # the runs of a round are neighbours in time: their ratio is the least disturbed by other load
            per_round = [h / b for h, b in zip(rows["hcflask"], rows[ref], strict=True)]
            print(f"ratio hcflask / {ref}: {medians['hcflask'] / medians[ref]:.3f} of the medians, "
                  f"{statistics.median(per_round):.3f} median of the rounds (min {min(per_round):.3f}, "
                  f"max {max(per_round):.3f}), {best['hcflask'] / best[ref]:.3f} of the best rounds, CPU per GB "
                  f"{statistics.median(cpus[ref]) / statistics.median(cpus['hcflask']):.3f}"
                  + (" (goal >= 0.95)" if ref == "bare xrdcp" else ""))
        if args.first_job:
            first_job(base, rucio, args.files, args.first_job)
    finally:
        if rucio is not None:
            rucio.close()
        xrootd.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

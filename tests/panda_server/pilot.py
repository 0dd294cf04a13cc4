"""A small PanDA pilot for the test server: fetches jobs and really runs them.

PyPI's ``panda-pilot`` calls endpoints that the 1.0.x server no longer
allows, so this pilot speaks the server's own pilot API with the pilot
certificate (whose DN is in ``production_dns``):

1. ``POST /api/v1/pilot/acquire_jobs`` for each queue (the job becomes
   ``sent``);
2. runs ``transformation`` with the job parameters in a fresh directory,
   reporting ``starting`` and then ``running`` as heartbeats (a heartbeat
   answered with ``tobekilled`` kills the payload's process group);
3. reports ``finished`` (exit code 0) or ``failed`` with the real exit code
   as ``trans_exit_code``/``exe_error_code``, a pilot error code and the
   last line of the payload's stderr (or of ``./stderr``) as diagnostics, CPU time and the node
   name, plus the ``job_output_report`` describing the log tarball (guid,
   size, adler32), as the real pilot does;
4. like pilot3, keeps the job description it got in ``pandaJobData.out`` and
   sends the payload's ``jobReport.json`` (if any) as the job's metadata
   (``meta_data``) with the final update (pilot3's ``user.get_metadata``).

Standard library only, so any Python runs it.  One thread per job.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path

#: pilot error code for a payload that exited non-zero (PanDA: "payload failed")
PAYLOAD_FAILED = 1305
#: pilot error code for a job the server asked to kill
KILLED = 1144
HEARTBEAT = 2.0
#: what a pilot of a unified queue asks for ("unified": user, managed, prod_test ...), then ptest
LABELS = ("unified", "ptest")


class Api:
    def __init__(self, server: str, cert: str, ca_dir: str) -> None:
        self.base = server.rstrip("/") + "/api/v1/pilot/"
        self.ctx = ssl.create_default_context(capath=ca_dir)
        self.ctx.load_cert_chain(cert, cert)

    def call(self, method: str, **params: object) -> dict:
        body = json.dumps({k: v for k, v in params.items() if v is not None}).encode()
        req = urllib.request.Request(  # noqa: S310 - https URL given by the fixture
            self.base + method, data=body, method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:  # noqa: S310
            return json.loads(resp.read())


def _adler32(path: Path) -> str:
    value = 1
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:250] if lines else ""


def run_job(api: Api, queue: str, job: dict, root: Path) -> None:
    panda_id = int(job["PandaID"])
    workdir = root / str(panda_id)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pandaJobData.out").write_text(json.dumps(job))
    node = socket.gethostname()
    common = {"job_id": panda_id, "site_name": queue, "node": node, "attempt_nr": job.get("attemptNr")}
    _update(api, job_status="starting", **common)
    start = time.time()
    argv = [job["transformation"], *shlex.split(job.get("jobPars") or "")]
    with (workdir / "payload.stdout").open("wb") as out, (workdir / "payload.stderr").open("wb") as err:
        proc = subprocess.Popen(  # noqa: S603 - the job's own command, as a pilot runs it
            argv, cwd=workdir, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        killed = False
        beat = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - beat >= HEARTBEAT:
                beat = time.monotonic()
                try:  # a heartbeat lost while the server is down: the next one tells it
                    answer = api.call("update_job", job_status="running", **common)
                except OSError:
                    answer = {}
                if "tobekilled" in json.dumps(answer.get("data") or {}):
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
            time.sleep(0.2)
    end = time.time()
    log_name = job.get("logFile") or f"{panda_id}.log.tgz"
    log_path = root / log_name
    with tarfile.open(log_path, "w:gz") as tar:
        tar.add(workdir, arcname=log_name.removesuffix(".tgz"))
    report = {log_name: {"guid": job.get("logGUID") or "", "fsize": log_path.stat().st_size,
                         "adler32": _adler32(log_path)}}
    job_report = workdir / "jobReport.json"
    if job_report.exists():
        common["meta_data"] = job_report.read_text(errors="replace")
    timing = {"start_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start)),
              "end_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end))}
    if rc == 0 and not killed:
        _update(api, job_status="finished", trans_exit_code=0, exe_error_code=0, pilot_error_code=0,
                 cpu_consumption_time=int(usage.ru_utime + usage.ru_stime), cpu_consumption_unit="s",
                 job_output_report=json.dumps(report), core_count=1, **timing, **common)
        return
    # the hcflask wrapper keeps its payload's stderr in ./stderr
    diag = _last_line(workdir / "payload.stderr") or _last_line(workdir / "stderr") or f"payload exited with {rc}"
    code = KILLED if killed else PAYLOAD_FAILED
    _update(api, job_status="failed", trans_exit_code=rc, exe_error_code=rc, exe_error_diag=diag,
             pilot_error_code=code, pilot_error_diag=f"payload exited with code {rc}: {diag}"[:250],
             cpu_consumption_time=int(usage.ru_utime + usage.ru_stime), cpu_consumption_unit="s",
             job_output_report=json.dumps(report), **timing, **common)


def _update(api: Api, **params: object) -> dict:
    """``update_job``, tried again while the server is down (as a real pilot does): a job whose
    "starting" or final update is lost would stay ``sent`` for ever."""
    deadline = time.monotonic() + 180
    while True:
        try:
            return api.call("update_job", **params)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--ca-dir", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    api = Api(args.server, args.cert, args.ca_dir)
    while True:
        for queue, label in itertools.product(args.queue, LABELS):
            try:
                answer = api.call("acquire_jobs", site_name=queue, prod_source_label=label, n_jobs=10,
                                  node=socket.gethostname())
            except OSError as exc:  # server down (the outage test): keep trying
                print(f"acquire_jobs {queue}: {exc}", flush=True)
                continue
            for job in (answer.get("data") or {}).get("jobs", []) if answer.get("success") else []:
                print(f"{queue}: running {job['PandaID']}", flush=True)
                threading.Thread(target=_guarded, args=(api, queue, job, args.workdir), daemon=True).start()
        time.sleep(args.interval)


def _guarded(api: Api, queue: str, job: dict, root: Path) -> None:
    try:
        run_job(api, queue, job, root)
    except Exception as exc:  # noqa: BLE001 - a pilot reports and goes on
        print(f"job {job.get('PandaID')}: {exc!r}", flush=True)


if __name__ == "__main__":
    main()

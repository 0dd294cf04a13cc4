"""The ``panda`` backend: test jobs sent to PanDA queues through ``panda-client``.

HammerCloud is, at heart, a PanDA client: it sends test jobs to PanDA
queues and reads their fate back from the PanDA server.  A ``panda`` queue
names the PanDA queue (``site`` = ``computingSite``) and, per queue or in
``[backends.panda]``, the server and the credentials (a grid proxy or a
certificate+key file, or an OIDC token file).

* **Submit**: many jobs per ``Client.submitJobs`` call.  The payload is the
  self-contained job wrapper rendered to run in the pilot's own directory,
  carried in the job parameters (``bash -c '<decode and run>'``), so any
  pilot that runs ``transformation jobParameters`` runs it; each job has a
  log file, as PanDA's adder expects.
* **Monitor**: ``getJobStatus`` for all jobs in one call, ``getFullJobStatus``
  for those already archived.  The pilot's verdict (exit code, start/end,
  worker node) is written as the job's ``result.json`` in its work dir,
  where the engine reads every backend's verdict; error codes and
  diagnostics become the failure reason, CPU time, events and memory the
  metrics.  The payload's own stdout stays with the pilot (in the log
  tarball), so output patterns and regex metrics do not apply here.
* **Kill**: ``killJobs`` for all jobs in one call.
* **Outage**: a call that fails (connection or certificate error, HTTP
  error, refusal: ``panda-client`` answers 255 for all) is an outage of the
  backend (:class:`BackendUnavailable`), never a job failure;
  ``Client.hello()`` says which in the message.  A job the server took in
  but did not store (no PandaID) is refused (:class:`SubmitError`).
* **Crash safety**: PanDA has no look-up by job name, so the job's work dir
  gets a ``panda.json`` marker before the call (``submitting``, with the
  highest PandaID this instance has seen) and after it (the PandaID).
  ``find_by_name`` adopts marked jobs and, for a crash during the call
  itself, scans the PandaIDs after the one noted for the jobs' names (PanDA
  hands out ids in order; the scan stops at the first batch of unknown ids),
  once the call is ``SUBMIT_SETTLE`` seconds old, as the server may still
  be storing what the crashed process sent.

Native states (PanDA ``jobStatus``) are mapped in :mod:`panda_status`:
``pending defined assigned waiting activated throttled sent`` -> queued;
``starting running holding transferring merging`` -> running;
``finished`` -> succeeded; ``failed closed`` -> failed; ``cancelled`` ->
cancelled; unknown to the server -> lost.
"""
from __future__ import annotations

import base64
import os
import shlex
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from hcflask.backends import register
from hcflask.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    JobRef,
    JobSpec,
    OptionError,
    Status,
    SubmitError,
)
from hcflask.backends.jobscript import RESULT, read_json, render, write_json
from hcflask.backends.panda_data import input_files, keep_report, report_block
from hcflask.backends.panda_status import as_number, as_text, status_of
from hcflask.states import JobState

# without it, importing the client resolves a CERN host name (a DNS load-balancing trick)
os.environ.setdefault("PANDA_BEHIND_REAL_LB", "1")
from pandaclient import Client  # noqa: E402
from pandaclient.FileSpec import FileSpec  # noqa: E402
from pandaclient.JobSpec import JobSpec as PandaJob  # noqa: E402

LABELS = ("user", "prod_test", "ptest")
MARKER = "panda.json"
#: ids per status call; ids per call of a crash scan and how far past the last known PandaID it looks
CHUNK = 500
SCAN_CHUNK = 100
DEFAULT_SCAN = 5000
#: seconds a crashed submit call may still be processed by the server
SUBMIT_SETTLE = 10.0

_client_lock = threading.Lock()


@register("panda")
class PandaBackend(Backend):
    options: ClassVar[Mapping[str, str]] = {
        "site": "the PanDA queue (computingSite) jobs go to",
        "server": "PanDA server base URL, e.g. https://pandaserver.example.org:25443",
        "ca_dir": "directory of trusted CA certificates (X509_CERT_DIR)",
        "proxy": "grid proxy or certificate+key file (X509_USER_PROXY)",
        "token_file": "OIDC ID token file, instead of a proxy (needs auth_vo)",
        "auth_vo": "VO (or VO.group) of the token",
        "prod_source_label": f"prodSourceLabel: {', '.join(LABELS)} (default user)",
        "processing_type": "processingType (default hammercloud)",
        "vo": "VO of the jobs (default: the server's)",
    }
    enforces_walltime = False  # the wrapper enforces it: pilots differ
    submit_batch = 100

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._last_id = 0  # highest PandaID this instance has seen, for the crash scan
        self._markers_read = False

    # -- options --------------------------------------------------------------
    @classmethod
    def option_schema(cls, limits: Mapping[str, int]) -> dict[str, Any]:
        schema = super().option_schema(limits)
        props = schema["properties"]
        props["site"]["pattern"] = "[^ \\t\\r\\n]"
        props["server"]["pattern"] = "^https://[A-Za-z0-9]"
        props["prod_source_label"]["enum"] = list(LABELS)
        return {**schema, "required": ["site"]}

    @classmethod
    def validate_options(cls, options: Mapping[str, Any],
                         config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        cleaned = super().validate_options(options, config)
        for key, value in cleaned.items():
            if not isinstance(value, str):
                raise OptionError(key, f"must be text, got {value!r}")
        cleaned = {k: v.strip() for k, v in cleaned.items()}
        if not cleaned.get("site"):
            raise OptionError("site", "the PanDA queue name is required")
        if "server" in cleaned:
            url = urlparse(cleaned["server"])
            if url.scheme != "https" or not url.hostname:
                raise OptionError("server", f"expected an https:// URL, got {cleaned['server']!r}")
        label = cleaned.setdefault("prod_source_label", "user")
        if label not in LABELS:
            raise OptionError("prod_source_label", f"must be one of {', '.join(LABELS)}, got {label!r}")
        cleaned.setdefault("processing_type", "hammercloud")
        if cleaned.get("token_file") and not cleaned.get("auth_vo"):
            raise OptionError("auth_vo", "required with token_file")
        for key in ("ca_dir", "proxy", "token_file"):
            if cleaned.get(key) and not Path(cleaned[key]).exists():
                raise OptionError(key, f"{cleaned[key]} does not exist on the service host", conflict=True)
        return cleaned

    def _setting(self, options: Mapping[str, Any], key: str) -> str:
        return str(options.get(key) or self.config.get(key) or "")

    @contextmanager
    def _client(self, options: Mapping[str, Any]) -> Iterator[Any]:
        """``Client`` pointed at this queue's server and credentials (one caller at a time)."""
        server = self._setting(options, "server")
        if not server:
            raise BackendUnavailable("no PanDA server configured (queue option or [backends.panda] server)")
        url = urlparse(server)
        env = {"X509_CERT_DIR": self._setting(options, "ca_dir") or "/etc/grid-security/certificates"}
        token = self._setting(options, "token_file")
        if token:
            env.update(PANDA_AUTH="oidc", PANDA_AUTH_VO=self._setting(options, "auth_vo"),
                       OIDC_AUTH_TOKEN_FILE=token)
        else:
            env["X509_USER_PROXY"] = self._setting(options, "proxy") or f"/tmp/x509up_u{os.getuid()}"  # noqa: S108
        keys = (*env, "PANDA_AUTH", "PANDA_AUTH_VO", "OIDC_AUTH_TOKEN_FILE", "X509_USER_PROXY")
        with _client_lock:
            saved = {k: os.environ.get(k) for k in keys}
            saved_base = Client.server_base_path_ssl
            for key in keys:
                os.environ.pop(key, None)
            os.environ.update(env)
            Client.server_base_path_ssl = f"https://{url.netloc}/api/v1"
            try:
                yield Client
            finally:
                Client.server_base_path_ssl = saved_base
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    @staticmethod
    def _failed(client: Any, what: str) -> BackendUnavailable:
        """Why a call failed: unreachable, or up but refusing (both an outage, never a job failure)."""
        code, message = client.hello()
        if code != 0:
            return BackendUnavailable(f"PanDA server unavailable: {message}")
        return BackendUnavailable(f"PanDA server is up but {what} failed (HTTP error or refusal, see its log)")

    # -- submit -----------------------------------------------------------------
    def panda_job(self, spec: JobSpec) -> Any:
        """The PanDA job that runs ``spec``'s wrapper in the pilot's directory."""
        options = spec.queue_options
        res = spec.resources
        # the stage-in's and stage-out's outcome goes back through the pilot's job report
        report = report_block() if spec.stagein or spec.stageout else ""
        wrapper = render(payload=spec.payload, env=spec.env, workdir=None, walltime=res.walltime,
                         header=f"# {spec.name} (PanDA queue {options['site']})\n", stagein=spec.stagein,
                         stageout=spec.stageout + report)
        encoded = base64.b64encode(wrapper.encode()).decode()
        job = PandaJob()
        job.jobName = spec.name
        job.transformation = "bash"
        job.jobParameters = "-c " + shlex.quote(f"echo {encoded} | base64 -d > hc-job.sh && exec bash hc-job.sh")
        job.computingSite = options["site"]
        job.prodSourceLabel = options.get("prod_source_label", "user")
        job.processingType = options.get("processing_type", "hammercloud")
        if options.get("vo"):
            job.VO = options["vo"]
        job.currentPriority = job.assignedPriority = 1000
        job.coreCount = res.cores
        job.maxWalltime = job.maxCpuCount = res.walltime
        if res.memory_mb:
            job.minRamCount, job.minRamUnit = res.memory_mb, "MB"
        if spec.input_dataset:
            job.prodDBlock = spec.input_dataset  # the input dataset, where PanDA keeps it
        infiles = input_files(spec.inputs, spec.input_dataset)
        for infile in infiles:
            job.addFile(infile)
        if infiles:
            job.transferType = "direct"  # the wrapper reads them itself (panda_data)
        job.metadata = ""  # else the server stores an empty row for it and drops the pilot's job report
        job.destinationDBlock = f"{spec.name}.log"
        log = FileSpec()
        log.lfn, log.type, log.GUID = f"{spec.name}.log.tgz", "log", str(uuid.uuid4())
        log.dataset = log.destinationDBlock = job.destinationDBlock
        job.addFile(log)
        return job

    def submit(self, spec: JobSpec) -> str:
        result = self.submit_many([spec])[0]
        if isinstance(result, BackendError):
            raise result
        return result

    def submit_many(self, specs: Sequence[JobSpec]) -> list[str | BackendError]:
        """All ``specs`` in as few ``submitJobs`` calls as queues (one per server+credential set)."""
        results: dict[int, str | BackendError] = {}
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, spec in enumerate(specs):
            o = spec.queue_options
            key = tuple(self._setting(o, k) for k in ("server", "proxy", "token_file", "ca_dir"))
            groups.setdefault(key, []).append(i)
        for indexes in groups.values():
            results.update(self._submit_group([specs[i] for i in indexes], indexes))
        return [results[i] for i in range(len(specs))]

    def _known_ids(self, workdir: Path) -> int:
        """The highest PandaID in the markers of the other jobs of this instance (once per process)."""
        if not self._markers_read:
            root = workdir.parent.parent  # <jobs root>/<test>/<job>
            ids = [int((read_json(p) or {}).get("panda_id") or 0) for p in root.glob(f"*/*/{MARKER}")]
            self._last_id = max([self._last_id, *ids])
            self._markers_read = True
        return self._last_id

    def _submit_group(self, specs: list[JobSpec], indexes: list[int]) -> dict[int, str | BackendError]:
        self._known_ids(specs[0].workdir)
        for spec in specs:
            write_json(spec.workdir / MARKER, {"state": "submitting", "after": self._last_id})
        jobs = [self.panda_job(spec) for spec in specs]
        error: BackendUnavailable | None = None
        try:
            with self._client(specs[0].queue_options) as client:
                code, out = client.submitJobs(jobs)
                if code != 0 or not isinstance(out, list) or len(out) != len(specs):
                    error = self._failed(client, f"submitJobs of {len(specs)} job(s)")
        except BackendUnavailable as exc:
            error = exc
        if error is not None:  # the call came back: no crash scan needed for these
            for spec in specs:
                write_json(spec.workdir / MARKER, {"state": "not submitted", "after": self._last_id})
            return {i: error for i in indexes}
        results: dict[int, str | BackendError] = {}
        for i, spec, row in zip(indexes, specs, out, strict=True):
            panda_id = as_number(row[0] if isinstance(row, list | tuple) and row else None)
            if panda_id is None:
                results[i] = SubmitError(f"PanDA did not accept the job for queue {spec.queue_options['site']}")
                continue
            self._last_id = max(self._last_id, int(panda_id))
            write_json(spec.workdir / MARKER, {"state": "submitted", "panda_id": int(panda_id)})
            results[i] = str(int(panda_id))
        return results

    # -- monitor ------------------------------------------------------------------
    def _records(self, options: Mapping[str, Any], ids: list[int]) -> dict[int, Any]:
        """PanDA's job records for ``ids`` (active ones, then archived ones), by PandaID."""
        found: dict[int, Any] = {}
        with self._client(options) as client:
            for call in (client.getJobStatus, client.getFullJobStatus):
                todo = [i for i in ids if i not in found]
                for start in range(0, len(todo), CHUNK):
                    chunk = todo[start:start + CHUNK]
                    code, jobs = call(chunk)
                    if code != 0 or not isinstance(jobs, list):
                        raise self._failed(client, "a status query")
                    found.update({i: j for i, j in zip(chunk, jobs, strict=False) if j is not None})
                if len(found) == len(ids):
                    break
        return found

    def _by_server(self, refs: Sequence[JobRef]) -> dict[tuple[str, str, str], list[JobRef]]:
        groups: dict[tuple[str, str, str], list[JobRef]] = {}
        for ref in refs:
            o = ref.queue_options
            groups.setdefault((self._setting(o, "server"), self._setting(o, "proxy"),
                               self._setting(o, "token_file")), []).append(ref)
        return groups

    def poll_many(self, jobs: Sequence[JobRef]) -> dict[str, Status]:
        statuses: dict[str, Status] = {}
        for group in self._by_server([j for j in jobs if j.backend_id.isdigit()]).values():
            records = self._records(group[0].queue_options, [int(r.backend_id) for r in group])
            for ref in group:
                record = records.get(int(ref.backend_id))
                if record is None:
                    statuses[ref.backend_id] = Status(JobState.LOST, "unknown", "PanDA does not know this job")
                    continue
                status = statuses[ref.backend_id] = status_of(record)
                if status.exit_code is not None and not (ref.workdir / RESULT).exists():
                    keep_report(ref.workdir, record)  # before the result: the engine reads them together
                    self._write_result(ref.workdir, status)
        return statuses

    @staticmethod
    def _write_result(workdir: Path, status: Status) -> None:
        """The pilot's verdict where the engine reads the wrapper's (the wrapper's own file is on the node)."""
        def epoch(value: datetime | None) -> int | None:
            return int((value - datetime(1970, 1, 1)).total_seconds()) if value else None

        workdir.mkdir(parents=True, exist_ok=True)
        write_json(workdir / RESULT, {
            "exit_code": status.exit_code, "start": epoch(status.started_at), "end": epoch(status.ended_at),
            "host": status.host or "", "timeout": False, "source": "panda",
        })

    def cancel_many(self, jobs: Sequence[JobRef]) -> None:
        for group in self._by_server([j for j in jobs if j.backend_id.isdigit()]).values():
            ids = [int(r.backend_id) for r in group]
            with self._client(group[0].queue_options) as client:
                for start in range(0, len(ids), CHUNK):
                    code, _ = client.killJobs(ids[start:start + CHUNK])
                    if code != 0:
                        raise self._failed(client, "killJobs")

    # -- crash reconciliation -------------------------------------------------------
    def find_by_name(self, jobs: Sequence[JobRef]) -> dict[str, str]:
        found: dict[str, str] = {}
        for group in self._by_server(jobs).values():
            markers = {ref.name: read_json(ref.workdir / MARKER) or {} for ref in group}
            known = {int(m["panda_id"]): name for name, m in markers.items() if m.get("panda_id")}
            records = self._records(group[0].queue_options, list(known)) if known else {}
            for panda_id, record in records.items():
                if as_text(record.jobName) == known[panda_id]:
                    found[known[panda_id]] = str(panda_id)
            after = [int(m.get("after") or 0) for n, m in markers.items()
                     if n not in found and m.get("state") == "submitting"]
            if after:
                wanted = {n for n, m in markers.items() if n not in found and m.get("state") == "submitting"}
                self._settle([r.workdir / MARKER for r in group if r.name in wanted])
                found.update(self._scan(group[0].queue_options, min(after), wanted))
        return found

    @staticmethod
    def _settle(markers: list[Path]) -> None:
        """The server may still be storing the batch a crashed call sent: let it finish first."""
        newest = max((p.stat().st_mtime for p in markers if p.exists()), default=0.0)
        wait = newest + SUBMIT_SETTLE - time.time()
        if wait > 0:
            time.sleep(wait)

    def _scan(self, options: Mapping[str, Any], after: int, wanted: set[str]) -> dict[str, str]:
        """Jobs named in ``wanted`` among the PandaIDs after ``after`` (a crash mid-call)."""
        found: dict[str, str] = {}
        limit = int(self.config.get("crash_scan", DEFAULT_SCAN))
        start = after + 1
        while start <= after + limit and len(found) < len(wanted):
            ids = list(range(start, start + SCAN_CHUNK))
            with self._client(options) as client:
                code, jobs = client.getJobStatus(ids)
                if code != 0 or not isinstance(jobs, list):
                    raise self._failed(client, "a status query")
            if all(j is None for j in jobs):
                break
            for panda_id, job in zip(ids, jobs, strict=False):
                if job is not None and as_text(job.jobName) in wanted:
                    found[as_text(job.jobName)] = str(panda_id)
            start += SCAN_CHUNK
        return found

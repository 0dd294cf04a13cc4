"""Realistic failure texts with their variable parts, for the signature benchmark and tests.

Each cause is a format string whose ``{field}`` parts are drawn at random the
way real stderr lines vary: node names in the styles sites use, addresses,
ports, times, pids, job ids, scratch paths, sizes and durations.  The same
cause must give one signature whatever is drawn (hcflask.signatures);
two causes must never give the same one.  Only ``exit`` codes, signals, errno
and bracketed error codes are part of a cause.
"""
from __future__ import annotations

import random
import string
from collections.abc import Callable

Draw = Callable[[random.Random], str]


def _node(r: random.Random) -> str:
    style = r.randrange(6)
    n = r.randrange(1, 9999)
    return [f"wn{n:04d}.site.example", f"node{n:03d}", f"c{r.randrange(1, 40)}-{r.randrange(1, 64)}",
            f"nid{n:06d}", f"lxbatch{n}.cern.ch", f"worker-{n}.grid.example.org"][style]


def _ip(r: random.Random) -> str:
    if r.random() < 0.2:
        return "2001:db8:" + ":".join(f"{r.randrange(65536):x}" for _ in range(3)) + f"::{r.randrange(1, 999):x}"
    return ".".join(str(r.randrange(1, 255)) for _ in range(4))


def _time(r: random.Random) -> str:
    h, m, s = r.randrange(24), r.randrange(60), r.randrange(60)
    return [f"2026-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}T{h:02d}:{m:02d}:{s:02d}Z",
            f"{h:02d}:{m:02d}:{s:02d}", f"Dec {r.randrange(1, 29)} {h:02d}:{m:02d}:{s:02d}",
            f"2026-11-{r.randrange(1, 29):02d} {h:02d}:{m:02d}:{s:02d}.{r.randrange(1000):03d}"][r.randrange(4)]


def _hex(r: random.Random, n: int = 12) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n - 1)) + r.choice("abcdef")


def _uuid(r: random.Random) -> str:
    h = _hex(r, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _word(r: random.Random) -> str:
    return "".join(r.choice(string.ascii_lowercase) for _ in range(r.randrange(4, 9)))


FIELDS: dict[str, Draw] = {
    "node": _node, "ip": _ip, "time": _time, "hex": lambda r: "0x" + _hex(r, 12), "uuid": _uuid,
    "pid": lambda r: str(r.randrange(100, 4_000_000)), "jobid": lambda r: str(r.randrange(1000, 99_999_999)),
    "port": lambda r: str(r.randrange(1024, 65535)), "secs": lambda r: str(r.randrange(1, 3600)),
    "float": lambda r: f"{r.uniform(0.1, 999):.2f}", "mb": lambda r: str(r.randrange(1, 64000)),
    "n": lambda r: str(r.randrange(0, 100000)), "pct": lambda r: f"{r.randrange(90, 101)}%",
    "scratch": lambda r: f"/scratch/job_{r.randrange(10**7)}/work{r.randrange(99)}",
    "tmp": lambda r: f"/tmp/hc-{_hex(r, 8)}",
    "file": lambda r: (f"EVNT.{r.randrange(10**8):08d}._{r.randrange(999):06d}"
                      f".pool.root.{r.randrange(1, 9)}"),
    "user": lambda r: f"{_word(r)}{r.randrange(99)}", "size": lambda r: f"{r.randrange(1, 999)}.{r.randrange(9)} GB",
}

#: (cause, text): about sixty causes of the kinds a site sees
CAUSES: list[tuple[str, str]] = [
    ("cvmfs-open", "exit 3: cannot open /cvmfs/atlas.cern.ch/repo/sw on {node} after {secs} s"),
    ("cvmfs-mount", "exit 1: CernVM-FS: failed to mount atlas.cern.ch on {node} (pid {pid}): "
                    "failed to discover HTTP proxy servers"),
    ("cvmfs-cache", "exit 1: cvmfs2: cache directory /var/lib/cvmfs/shared is full ({pct} used) on {node}"),
    ("cvmfs-catalog", "exit 1: [{time}] CernVM-FS: catalog load failed for /cvmfs/sft.cern.ch: "
                      "failed to download {hex}"),
    ("storage-xrootd-open", "exit 4: [3011] No such file or directory: open root://{ip}:{port}//data/{file}"),
    ("storage-xrootd-timeout",
     "exit 4: [3006] Operation expired: connection to {node}:{port} timed out after {secs} s"),
    ("storage-dcache-refused", "exit 5: srm: dCache door {node} refused connection from {ip}"),
    ("storage-quota", "exit 122: write failed: Disk quota exceeded for user {user} on /eos/atlas/{user}/out"),
    ("storage-checksum", "stage-in failed: adler32 mismatch for {file} from root://{node}:{port}//store "
                         "(expected {hex} got {hex})"),
    ("stagein-timeout", "stage-in failed: timeout after {secs} s reading {file} from {node}"),
    ("stagein-no-replica", "stage-in failed: no replica of {file} at any RSE reachable from {node}"),
    ("stageout-failed", "stage-out failed: upload of log.{jobid}.tgz to {node} returned HTTP 500"),
    ("pilot-lost-heartbeat", "pilot: lost heartbeat of job {jobid} on {node} at {time}"),
    ("pilot-wrapper", "exit 64: pilot wrapper: python3 not found in PATH on {node} (pid {pid})"),
    ("pilot-proxy", "exit 1: pilot: proxy certificate /tmp/x509up_u{n} expired at {time}"),
    ("pilot-payload-killed", "pilot: payload {uuid} killed by signal 9 after {secs} s"),
    ("slurm-node-fail", "node failure: {node} stopped responding at {time}"),
    ("slurm-timeout", "timeout after 01:00:00"),
    ("slurm-oom", "exit 137: slurmstepd: error: Detected 1 oom_kill event in StepId={jobid}.batch. "
                  "Some of the step tasks have been OOM Killed."),
    ("slurm-cgroup-mem", "exit 1: slurmstepd: error: Exceeded job memory limit at some point ({mb} MB) on {node}"),
    ("slurm-prolog", "exit 1: slurmd[{pid}]: error: prolog failed: rc:1 output:mount /scratch on {node} failed"),
    ("slurm-launch", "exit 1: srun: error: {node}: task {n}: Exited with exit code 2"),
    ("slurm-cancelled-preempt", "exit 0: CANCELLED AT {time} DUE TO PREEMPTION on {node}"),
    ("kernel-oom", "exit 137: Out of memory: Killed process {pid} (athena.py) total-vm:{mb}kB on {node}"),
    ("segfault", "exit 139: athena.py[{pid}]: segfault at {hex} ip {hex} sp {hex} error 4 in libCore.so"),
    ("abort-assert", "exit 134: athena.py: Assertion `nEvents > 0' failed at {time} on {node}"),
    ("python-import", "exit 1: ModuleNotFoundError: No module named 'AthenaCommon' (pid {pid})"),
    ("python-keyerror", "exit 1: KeyError: 'run{n}' in {scratch}/job.py line {n}"),
    ("scratch-full", "exit 28: write {scratch}/out.root: No space left on device ({size} free)"),
    ("scratch-readonly", "exit 30: cannot create {scratch}/tmp: Read-only file system on {node}"),
    ("scratch-perm", "exit 13: mkdir {scratch}: Permission denied (uid {n})"),
    ("dns", "exit 6: curl: (6) Could not resolve host: frontier{n}.example.org from {node}"),
    ("http-503", "exit 22: curl: (22) The requested URL returned error: 503 from http://{ip}:{port}/squid"),
    ("http-404", "exit 22: curl: (22) The requested URL returned error: 404 for https://conddb.example.org/"
                 "payload/{hex}"),
    ("frontier-squid", "exit 65: frontier: all squid proxies failed ({ip}:{port}, {ip}:{port}) at {time}"),
    ("conditions-db", "exit 65: COOL: failed to connect to conditions DB at {ip}:{port} after {n} retries"),
    ("tls-expired", "exit 35: SSL certificate problem: certificate has expired for {node} (serial {hex})"),
    ("tls-ca", "exit 60: SSL certificate problem: unable to get local issuer certificate from {node}:{port}"),
    ("auth-token", "exit 1: token {uuid} rejected by {node}: signature verification failed"),
    ("container-pull", "exit 255: FATAL: could not pull docker://atlas/athena:{n}.{n}: "
                       "unexpected EOF after {size}"),
    ("container-runtime", "exit 255: FATAL: container creation failed: mount /proc/{pid}/ns on {node}: "
                          "operation not permitted"),
    ("apptainer-missing", "exit 127: apptainer: command not found on {node}"),
    ("gpu-missing", "exit 2: CUDA error: no CUDA-capable device is detected on {node} (GPU {n})"),
    ("gpu-ecc", "exit 3: CUDA error: uncorrectable ECC error encountered on GPU {uuid}"),
    ("mpi-init", "exit 1: MPI_Init failed on rank {n} ({node}): PMIx server not reachable at {ip}:{port}"),
    ("mpi-ib", "exit 1: UCX ERROR ib_device.c:{n} mlx5_0: port {n} is not active on {node}"),
    ("clock-skew", "exit 1: clock skew of {secs} s detected between {node} and {node}"),
    ("walltime-cpu", "exit 152: CPU time limit exceeded after {secs} s (pid {pid})"),
    ("output-missing", "output lacks required pattern 'hc-ok'"),
    ("output-error", "exit 0: output matched forbidden pattern 'ERROR' at line {n}: ERROR in event {n}"),
    ("perf-limit", "performance: events_per_s={float} below lower limit 50"),
    ("no-result", "the job left no result file in {scratch}"),
    ("fs-stale", "exit 116: stat {scratch}/input: Stale file handle on {node}"),
    ("fs-io", "exit 5: read /gpfs/hc/data/{file}: Input/output error on {node} at offset {n}"),
    ("lustre-evict", "exit 108: Lustre: client {hex} evicted by lustre-OST{n} at {ip}@o2ib"),
    ("ldap-user", "exit 1: getpwnam({user}) failed: no such user on {node}"),
    ("munge", "exit 1: munge: Invalid credential: expired at {time} (pid {pid})"),
    ("ntp", "exit 1: chrony: no reachable time source from {node} since {time}"),
    ("rucio-auth", "stage-in failed: Rucio: CannotAuthenticate: credentials of {user} rejected at {time}"),
    ("rucio-down", "stage-in failed: Rucio: ConnectionError: http://{ip}:{port}/replicas refused"),
]


def variant(text: str, r: random.Random) -> str:
    """One draw of a cause: every ``{field}`` filled independently."""
    out, rest = [], text
    while "{" in rest:
        head, _, tail = rest.partition("{")
        field, _, rest = tail.partition("}")
        out.append(head + FIELDS[field](r))
    return "".join(out) + rest


def variants(count: int, seed: int = 7) -> list[tuple[str, str]]:
    """``count`` variants of every cause, as (cause, text)."""
    r = random.Random(seed)  # noqa: S311 - reproducible data
    return [(cause, variant(text, r)) for cause, text in CAUSES for _ in range(count)]

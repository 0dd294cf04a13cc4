"""A real single-node Slurm cluster, started by the tests themselves.

Everything lives under one tmp dir (config, state, spool, logs, munge socket
and key, MariaDB data dir) and every daemon listens on a free loopback port,
so a plain cluster and an accounting cluster can run side by side and
nothing system-wide is touched.  Slurm's commands find the cluster through
``SLURM_CONF`` (see :attr:`SlurmCluster.env`); the backend gets the same path
as its ``slurm_conf`` setting.

Two set-ups:

* plain: ``jobcomp/filetxt`` only, so ``sacct`` fails ("accounting storage is
  disabled") and the backend falls back to ``sacct -c`` + ``scontrol``;
* accounting: ``slurmdbd`` on a private MariaDB, the set-up of a real site.

Needs the Debian packages of ``.ci/install-slurm.sh`` and root (the daemons
run as root, ``SlurmUser=root``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from hcflask.backends import Backend, JobRef, JobSpec, Resources, Status, jobscript

SBIN = Path("/usr/sbin")


def available() -> str | None:
    """Why a cluster cannot be started here, or None if it can."""
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"):
        if not shutil.which(tool) and not (SBIN / tool).exists():
            return f"{tool} not installed (run .ci/install-slurm.sh)"
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_line() -> str:
    """The node as ``slurmd -C`` sees it (real CPU count and memory)."""
    out = subprocess.run([str(SBIN / "slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    line = out.splitlines()[0]
    fields = dict(word.split("=", 1) for word in line.split())
    # leave headroom: slurmd refuses to register with more memory than it has
    fields["RealMemory"] = str(int(int(fields["RealMemory"]) * 0.9))
    return " ".join(f"{k}={v}" for k, v in fields.items())


class SlurmCluster:
    """Start, stop and restart the daemons of one test cluster."""

    def __init__(self, root: Path, *, accounting: bool = False, min_job_age: int = 300,
                 batch_sched_delay: int = 0, slurmd_timeout: int = 30) -> None:
        self.root = root
        self.accounting = accounting
        self.name = "hcacct" if accounting else "hcplain"
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.min_job_age = min_job_age
        # Slurm's default is 3 s (about two job starts every 3 s on one node);
        # the tests use 0, the benchmark both
        self.batch_sched_delay = batch_sched_delay
        # how long a silent slurmd takes to count as a node failure
        self.slurmd_timeout = slurmd_timeout
        self.node = node_line().split()[0].split("=", 1)[1]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports = {k: free_port() for k in ("ctld", "slurmd", "dbd", "mysql")}

    # -- environment ---------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    @property
    def backend_config(self) -> dict[str, object]:
        """``[backends.slurm]`` for this cluster: fast retries for the tests."""
        return {"slurm_conf": str(self.conf), "command_timeout": 10, "submit_retries": 2,
                "retry_delay": 0.2}

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
        env.update(self.env)
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, check=check,
                              timeout=timeout)

    # -- configuration -------------------------------------------------

    def write_config(self) -> None:
        for sub in ("state", "spool", "log", "munge", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        (self.root / "munge").chmod(0o755)
        r = self.root
        lines = [
            f"ClusterName={self.name}",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={self.ports['ctld']}",
            f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=1",
            "JobAcctGatherParams=OverMemoryKill",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={r / 'jobcomp.txt'}",
            f"MinJobAge={self.min_job_age}",
            "SlurmctldTimeout=10",
            f"SlurmdTimeout={self.slurmd_timeout}",
            "MessageTimeout=5",
            "InactiveLimit=0",
            "KillWait=2",
            "OverTimeLimit=0",
            f"SchedulerParameters=sched_min_interval=0,batch_sched_delay={self.batch_sched_delay}",
            "DefMemPerCPU=100",
            f"{node_line()} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=01:00:00 State=UP",
            f"PartitionName=long Nodes={self.node} MaxTime=1-00:00:00 State=UP",
        ]
        if self.accounting:
            lines += [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.ports['dbd']}",
                # the munge socket for the slurmdbd connection (AuthInfo is not used there)
                f"AccountingStoragePass={self.munge_socket}",
            ]
        else:
            lines.append("AccountingStorageType=accounting_storage/none")
        self.conf.write_text("\n".join(lines) + "\n")
        if self.accounting:
            dbd = self.root / "slurmdbd.conf"
            dbd.write_text("\n".join([
                "AuthType=auth/munge",
                f"AuthInfo=socket={self.munge_socket}",
                "DbdHost=localhost",
                "DbdAddr=127.0.0.1",
                f"DbdPort={self.ports['dbd']}",
                "SlurmUser=root",
                f"PidFile={r / 'slurmdbd.pid'}",
                f"LogFile={r / 'log' / 'slurmdbd.log'}",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={self.ports['mysql']}",
                "StorageUser=root",
                "StorageLoc=slurm_acct_db",
            ]) + "\n")
            dbd.chmod(0o600)

    # -- daemons ---------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
        env.update(self.env)
        with (self.root / "log" / f"{name}.out").open("ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                start_new_session=True)

    def _wait(self, what: str, ok, timeout: float = 60) -> None:  # noqa: ANN001 - a predicate
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) waiting for {what}; "
                                       f"see {self.root / 'log'}")
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}; see {self.root / 'log'}")

    def _start_mariadb(self) -> None:
        data = self.root / "mysql"
        if not data.exists():
            subprocess.run(["mariadb-install-db", f"--datadir={data}", "--user=root",
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           capture_output=True, check=True)
        sock = self.root / "mysql.sock"
        self._spawn("mariadb", [str(SBIN / "mariadbd"), "--no-defaults", f"--datadir={data}",
                                "--user=root", f"--socket={sock}", "--bind-address=127.0.0.1",
                                f"--port={self.ports['mysql']}", "--innodb-buffer-pool-size=64M",
                                "--skip-log-bin", f"--pid-file={self.root / 'mysql.pid'}"])

        def up() -> bool:
            probe = subprocess.run(["mariadb", f"--socket={sock}", "-uroot", "-e", "select 1"],
                                   capture_output=True, check=False)
            return probe.returncode == 0

        self._wait("mariadb", up)

    def start_controller(self) -> None:
        self._spawn("slurmctld", [str(SBIN / "slurmctld"), "-D", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False).returncode == 0)

    def stop_controller(self) -> None:
        self._stop("slurmctld")

    def start(self) -> None:
        self.write_config()
        self._spawn("munged", [str(SBIN / "munged"), "-F", "--force",
                               f"--key-file={self.root / 'munge' / 'munge.key'}",
                               f"--socket={self.munge_socket}",
                               f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}"])
        self._wait("munged", self.munge_socket.exists)
        if self.accounting:
            self._start_mariadb()
            self._spawn("slurmdbd", [str(SBIN / "slurmdbd"), "-D"])
            self._wait("slurmdbd", lambda: self.run("sacctmgr", "-n", "list", "cluster",
                                                    check=False).returncode == 0)
        self.start_controller()
        self.start_node()

    def start_node(self) -> None:
        """Start slurmd and wait for the node to be idle (ReturnToService=2 brings it back)."""
        self._spawn("slurmd", [str(SBIN / "slurmd"), "-D", "-f", str(self.conf)])
        self._wait("node idle", self._node_idle)

    def stop_node(self) -> None:
        """Stop slurmd: after ``slurmd_timeout`` its running jobs end in NODE_FAIL."""
        self._stop("slurmd")

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
        return bool(out) and all(state == "idle" for state in out)

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop(self) -> None:
        """Cancel what is left, stop every daemon (newest first), then any job step left over."""
        if "slurmctld" in self.procs:
            self.run("scancel", "--full", "-u", "root", check=False)
        for name in reversed(list(self.procs)):
            self._stop(name)
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """slurmstepd and job processes of this cluster outlive a killed slurmd (node failure)."""
        mark = f"SLURM_CONF={self.conf}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in environ:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until no job of this cluster is pending or running."""
        def empty() -> bool:
            return not self.run("squeue", "-h", "-o", "%i", check=False).stdout.strip()

        self._wait("empty queue", empty, timeout)


def make_spec(workdir: Path, name: str, payload: str, *, partition: str = "debug", cores: int = 1,
              memory_mb: int = 0, walltime: int = 600, **options: object) -> JobSpec:
    """A job as the engine would hand it over: the real wrapper, written into ``workdir``."""
    text = jobscript.render(payload=payload, env={"HC_JOB_NAME": name}, workdir=workdir)
    script = jobscript.write(workdir, text)
    return JobSpec(job_id=0, name=name, queue=partition, queue_options={"partition": partition, **options},
                   workdir=workdir, script=script,
                   resources=Resources(cores=cores, memory_mb=memory_mb, walltime=walltime))


def ref(spec: JobSpec, backend_id: str = "") -> JobRef:
    return JobRef(backend_id=backend_id, name=spec.name, queue=spec.queue, queue_options=spec.queue_options,
                  workdir=spec.workdir)


def wait_final(backend: Backend, refs: list[JobRef], timeout: float = 90,
               interval: float = 0.5) -> dict[str, Status]:
    """Poll (one batched call per round) until every job is final."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = backend.poll_many(refs)
        if all(r.backend_id in statuses and statuses[r.backend_id].state.final for r in refs):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not final after {timeout} s: {statuses}")
        time.sleep(interval)

"""Real data servers for the input-data tests: XRootD (Debian's) and Rucio (its own venv).

:class:`XRootDServer` exports one folder over ``root://`` (as the ``xrootd``
user when run as root: XRootD refuses to run as superuser).  Its folder is
outside pytest's private tmp (mode 0700) so that user can read it.

:class:`RucioServer` runs the Rucio server of ``.ci/install-rucio.sh`` on the
test PostgreSQL under gunicorn, userpass auth over plain HTTP; its schema and
root account come from Rucio's own bootstrap code.  :func:`load_dataset` then
does what a data manager would, with Rucio's own client: a scope, an RSE
whose ``root`` protocol reads through the XRootD server and whose ``file``
protocol writes the same folder, an account limit, uploads, a dataset.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RUCIO_VENV = Path(os.environ.get("HC_TEST_RUCIO_VENV", "/opt/hc-rucio/venv"))
INSTALL = ".ci/install-xrootd.sh, .ci/install-rucio.sh"
PASSWORD = "hc-rucio-secret"
USERNAME = "ddmlab"
#: XRootD client settings for tests: a dead server fails in seconds, not minutes
XRD_FAST = {"XRD_CONNECTIONRETRY": "1", "XRD_CONNECTIONWINDOW": "3", "XRD_REQUESTTIMEOUT": "10",
            "XRD_STREAMTIMEOUT": "10", "XRD_TIMEOUTRESOLUTION": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing() -> str:
    """Why the servers cannot run here ('' if they can)."""
    for tool in ("xrootd", "xrdcp", "xrdadler32"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run {INSTALL})"
    if not (RUCIO_VENV / "bin" / "gunicorn").exists():
        return f"the Rucio server is not installed in {RUCIO_VENV} (run {INSTALL})"
    try:
        import rucio.client  # noqa: F401
    except ImportError:
        return "rucio-clients is not installed (pip install .[data])"
    return ""


def _as_xrootd(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "xrootd", "--", *argv] if os.geteuid() == 0 else argv


class XRootDServer:
    """One ``xrootd`` process exporting ``self.root``; stop() and start() again on the same port."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="hc-xrootd-"))
        self.base.chmod(0o755)
        self.root = self.base / "export"
        self.root.mkdir(mode=0o755)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0

    @property
    def url(self) -> str:
        return f"root://127.0.0.1:{self.port}"

    def start(self) -> None:
        run = self.base / "run"
        run.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(run, "xrootd", "xrootd")
        config = self.base / "xrootd.cfg"
        config.write_text(f"all.export {self.root}\nxrootd.chksum adler32\n"
                          f"all.adminpath {run}\nall.pidpath {run}\n")
        clock = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            _as_xrootd(["xrootd", "-p", str(self.port), "-c", str(config), "-l", str(run / "xrootd.log"), "-n", "hc"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"xrootd exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.start_seconds = time.monotonic() - clock
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("xrootd did not listen within 20 s")

    def log(self) -> str:
        path = self.base / "run" / "hc" / "xrootd.log"
        for candidate in (path, self.base / "run" / "xrootd.log"):
            if candidate.exists():
                return candidate.read_text(errors="replace")
        return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class RucioServer:
    """The Rucio REST API (gunicorn) on a fresh PostgreSQL database."""

    def __init__(self, database_url: str) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="hc-rucio-"))
        self.database_url = database_url
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap_seconds = 0.0
        self.start_seconds = 0.0
        self.client_config = self.base / "client.cfg"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "RUCIO_CONFIG": str(self.base / "rucio.cfg"), "HOME": str(self.base)}

    def configure(self) -> None:
        package = next((RUCIO_VENV / "lib").glob("python3*/site-packages/rucio"))
        # the shipped template's logging sections, with an absolute script_location (its own is relative)
        template = (RUCIO_VENV / "rucio" / "etc" / "alembic.ini.template").read_text()
        logging = template[template.index("[loggers]"):]
        (self.base / "alembic.ini").write_text(
            f"[alembic]\nscript_location = {package}/db/sqla/migrate_repo\n"
            f"sqlalchemy.url = {self.database_url.replace('%', '%%')}\n\n{logging}")
        (self.base / "rucio.cfg").write_text(f"""[common]
logdir = {self.base}
loglevel = WARNING
[database]
default = {self.database_url}
[alembic]
cfg = {self.base}/alembic.ini
[bootstrap]
userpass_identity = {USERNAME}
userpass_pwd = {PASSWORD}
x509_identity =
gss_identity =
ssh_identity =
[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
""")
        # Rucio's upload client builds its own clients from a config file: the tests point RUCIO_CONFIG here
        self.client_config.write_text(f"""[client]
rucio_host = {self.url}
auth_host = {self.url}
auth_type = userpass
username = {USERNAME}
password = {PASSWORD}
account = root
request_retries = 1
""")

    def bootstrap(self) -> None:
        """Schema and root account, by Rucio's own code."""
        clock = time.monotonic()
        proc = subprocess.run(  # noqa: S603 - fixed argv
            [str(RUCIO_VENV / "bin" / "python"), "-c",
             "from rucio.db.sqla.util import build_database, create_base_vo, create_root_account\n"
             "build_database()\ncreate_base_vo()\ncreate_root_account()\n"],
            env=self._env(), capture_output=True, text=True, timeout=120, cwd=self.base)
        if proc.returncode != 0:
            raise RuntimeError(f"Rucio bootstrap failed: {proc.stderr[-3000:]}")
        self.bootstrap_seconds = time.monotonic() - clock

    def start(self) -> None:
        clock = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(RUCIO_VENV / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
             "--threads", "4", "--no-control-socket", "--log-file", str(self.base / "gunicorn.log"),
             "rucio.web.rest.flaskapi.v1.main:application"],
            env=self._env(), cwd=self.base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Rucio's gunicorn exited: {self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as answer:  # noqa: S310 - our server
                    if answer.status == 200:
                        self.start_seconds = time.monotonic() - clock
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Rucio did not answer /ping within 60 s: {self.log()[-3000:]}")

    def log(self) -> str:
        path = self.base / "gunicorn.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def hc_config(self) -> dict[str, Any]:
        """The ``[rucio]`` settings of an hcflask app that uses this server."""
        return {"RUCIO_HOST": self.url, "RUCIO_ACCOUNT": "root", "RUCIO_USERNAME": USERNAME,
                "RUCIO_PASSWORD": PASSWORD, "RUCIO_TIMEOUT": 5.0}

    def client(self) -> Any:
        from rucio.client import Client

        return Client(rucio_host=self.url, auth_host=self.url, account="root", auth_type="userpass",
                      creds={"username": USERNAME, "password": PASSWORD}, timeout=30)


def add_rse(rucio: Any, rse: str, xrootd: XRootDServer) -> None:
    """An RSE on the XRootD server's folder: ``root`` to read, posix ``file`` to write (upload)."""
    rucio.add_rse(rse)
    rucio.add_protocol(rse, {
        "scheme": "root", "hostname": "127.0.0.1", "port": xrootd.port, "prefix": f"/{xrootd.root}/",
        "impl": "rucio.rse.protocols.xrootd.Default",
        "domains": {"lan": {"read": 1, "write": 0, "delete": 0},
                    "wan": {"read": 1, "write": 0, "delete": 0, "third_party_copy_read": 0,
                            "third_party_copy_write": 0}}})
    rucio.add_protocol(rse, {
        "scheme": "file", "hostname": "localhost", "port": 0, "prefix": f"{xrootd.root}/",
        "impl": "rucio.rse.protocols.posix.Default",
        "domains": {"lan": {"read": 2, "write": 1, "delete": 1},
                    "wan": {"read": 2, "write": 1, "delete": 1, "third_party_copy_read": 0,
                            "third_party_copy_write": 0}}})
    rucio.set_local_account_limit("root", rse, 10**12)


def load_dataset(rucio: Any, rse: str, scope: str, dataset: str, folder: Path, files: int = 10,
                 size: int = 64 * 1024, prefix: str = "hc_input") -> list[Path]:
    """Write ``files`` random files, upload them to ``rse`` into ``scope:dataset`` (Rucio's upload client)."""
    from rucio.client.uploadclient import UploadClient

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = folder / f"{prefix}_{i:02d}.root"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    items = [{"path": str(p), "rse": rse, "did_scope": scope, "dataset_scope": scope, "dataset_name": dataset,
              "register_after_upload": True} for p in paths]
    UploadClient(rucio).upload(items)
    return paths


def pfn_path(rucio: Any, scope: str, name: str, rse: str) -> Path:
    """Where Rucio put a file on the RSE's folder (its ``file`` PFN)."""
    replica = next(iter(rucio.list_replicas([{"scope": scope, "name": name}], rse_expression=rse,
                                            schemes=["file"])))
    url = next(iter(replica["pfns"]))
    return Path("/" + url.split("://", 1)[1].split("/", 1)[1].lstrip("/"))

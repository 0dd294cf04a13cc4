"""A real ``panda-server`` on this machine, started from nothing for the tests.

``.ci/install-panda.sh`` puts ``panda-server`` in its own virtualenv
(``HC_TEST_PANDA_VENV``, default ``/opt/hc-panda/venv``).  This module
starts everything else under one directory:

* a throw-away CA with host, user and pilot certificates (``certs.py``);
* a private PostgreSQL 15 cluster (Debian's binaries) whose schema is
  generated from the installed package (``schema.py``), logged with
  ``log_min_error_statement=error`` so :meth:`PandaTestServer.sql_errors`
  can fail the tests on any SQL error the server hit;
* the server's configuration from the ``.rpmnew`` templates it ships;
* the WSGI server (gunicorn with client-certificate TLS, ``wsgi_app.py``);
* the adder daemon, which moves jobs out of ``holding``;
* the test pilot (``pilot.py``), which fetches jobs and really runs them.

What it is not: no JEDI task workflows, no Rucio, dummy data-management
plugins.  Jobs go through the same server code, database and states as in
production; their files are not moved anywhere.
"""
from __future__ import annotations

import configparser
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .certs import CertSet, make_certs

HERE = Path(__file__).resolve().parent
PG_BIN = Path(os.environ.get("HC_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
DEFAULT_VENV = Path(os.environ.get("HC_TEST_PANDA_VENV", "/opt/hc-panda/venv"))
QUEUES = ("HC_TEST_QUEUE", "HC_TEST_QUEUE_2")
DB_USER, DB_PASSWORD, DB_NAME = "panda", "panda-test", "panda_db"
SEED_SITE = """
INSERT INTO panda.site VALUES ('HC_TEST_SITE', 'nucleus', 1);
INSERT INTO panda.ddm_endpoint (ddm_endpoint_name, site_name, type, is_tape, blacklisted)
  VALUES ('HC_TEST_DATADISK', 'HC_TEST_SITE', 'DATADISK', 'N', 'N');
INSERT INTO panda.resource_types VALUES ('SCORE', 1, 1, NULL, NULL), ('MCORE', 2, NULL, NULL, NULL);
"""
SEED_QUEUE = """
INSERT INTO panda.schedconfig_json VALUES (:'queue', :'data', now());
INSERT INTO panda.panda_site VALUES (:'queue', 'HC_TEST_SITE');
INSERT INTO panda.panda_ddm_relation
  VALUES (:'queue', 'HC_TEST_DATADISK', 'read_lan,write_lan', 'Y', 1, 1, 'Y', 'Y', 'default');
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, check, timeout: float) -> None:  # noqa: ANN001 - any callable
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:g} s")


def _alive(url: str, certs: CertSet) -> bool:
    """True once the server answers ``is_alive`` over client-certificate TLS."""
    ctx = ssl.create_default_context(capath=str(certs.ca_dir))
    ctx.load_cert_chain(str(certs.user.proxy))
    try:
        with urllib.request.urlopen(f"{url}/api/v1/system/is_alive", context=ctx, timeout=5) as resp:  # noqa: S310
            return resp.status == 200
    except OSError:
        return False


def _stop_group(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """Stop a process started in its own session, with everything it forked."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    except ProcessLookupError:
        pass


class PandaTestServer:
    def __init__(self, base: Path, venv: Path = DEFAULT_VENV) -> None:
        self.base = base
        self.venv = venv
        self.home = base / "home"  # PANDA_HOME
        self.logdir = base / "log"
        self.pg_dir = Path(tempfile.mkdtemp(prefix="hc-panda-pg-"))
        self.pg_port = free_port()
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.certs: CertSet | None = None
        self.web: subprocess.Popen | None = None
        self.adder: subprocess.Popen | None = None
        self.pilot: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}
        self._closing = threading.Event()

    # -- environment ----------------------------------------------------
    def server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "PANDA_"))}
        env.update(PANDA_HOME=str(self.home), PYTHONPATH=str(HERE), PANDA_BEHIND_REAL_LB="1")
        return env

    def client_env(self) -> dict[str, str]:
        """What ``panda-client`` needs to talk to this server as the test user."""
        assert self.certs is not None
        return {
            "PANDA_URL": f"{self.url}/server/panda",
            "PANDA_URL_SSL": f"{self.url}/server/panda",
            "PANDACACHE_URL": f"{self.url}/server/panda",
            "PANDA_BEHIND_REAL_LB": "1",
            "X509_USER_PROXY": str(self.certs.user.proxy),
            "X509_CERT_DIR": str(self.certs.ca_dir),
        }

    def queue_options(self, queue: str = QUEUES[0]) -> dict[str, str]:
        """hcflask ``panda`` queue options pointing at this server."""
        assert self.certs is not None
        return {
            "site": queue,
            "server": self.url,
            "ca_dir": str(self.certs.ca_dir),
            "proxy": str(self.certs.user.proxy),
        }

    # -- PostgreSQL -----------------------------------------------------
    def _pg(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
        cmd = list(argv)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    def _start_db(self) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.pg_dir, pw.pw_uid, pw.pw_gid)
        data = self.pg_dir / "data"
        self._pg(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--no-sync")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.pg_port} -c unix_socket_directories={self.pg_dir}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                " -c log_min_error_statement=error -c max_connections=50")
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.pg_log), "-o", opts, "-w", "start")
        schema = subprocess.run(
            [str(self.venv / "bin" / "python"), str(HERE / "schema.py")],
            check=True, capture_output=True, text=True, env=self.server_env(),
        ).stdout
        setup = (
            f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}';\n"
            f"CREATE DATABASE {DB_NAME} OWNER {DB_USER};\n"
        )
        self.psql(setup, db="postgres", user="postgres")
        self.psql(schema)
        self._seed()

    def psql(self, sql: str, db: str = DB_NAME, user: str = DB_USER, **variables: str) -> str:
        """Run SQL through psql; ``variables`` are psql variables (``:'name'`` in the SQL)."""
        argv = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.pg_port), "-U", user, "-d", db, "-At"]
        for name, value in variables.items():
            argv += ["-v", f"{name}={value}"]
        return subprocess.run(argv, input=sql, check=True, capture_output=True, text=True).stdout

    def _seed(self) -> None:
        """One PanDA queue per name in QUEUES (schedconfig_json, panda_site) on one site and endpoint."""
        self.psql(SEED_SITE)
        for queue in QUEUES:
            data = {
                "siteid": queue, "nickname": queue, "status": "online", "type": "unified", "cloud": "WORLD",
                "ddm": "HC_TEST_DATADISK", "maxtime": 0, "corecount": 8, "capability": "ucore",
                "workflow": "pull_ups", "catchall": "", "maxrss": 0, "maxwdir": 0, "tier": 1, "region": "GRID",
                "resource_type": "GRID", "pilot_manager": "local", "is_unified": True, "corepower": 10,
                "coreenergy": 10,
            }
            self.psql(SEED_QUEUE, queue=queue, data=json.dumps(data))

    def sql_errors(self) -> list[str]:
        """Every ERROR the server caused in PostgreSQL since it started."""
        try:
            lines = self.pg_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        errors = []
        for i, line in enumerate(lines):
            if " ERROR: " in line:
                stmt = lines[i + 1] if i + 1 < len(lines) and "STATEMENT:" in lines[i + 1] else ""
                errors.append(f"{line.split(' ERROR: ', 1)[1]} | {stmt.split('STATEMENT:', 1)[-1].strip()[:300]}")
        return errors

    # -- configuration ----------------------------------------------------
    def _write_config(self) -> None:
        assert self.certs is not None
        etc_src = self.venv / "etc" / "panda"
        etc = self.home / "etc" / "panda"
        etc.mkdir(parents=True, exist_ok=True)
        for d in ("log", "cache", "auth", "keys", "certs"):
            (self.base / d).mkdir(exist_ok=True)
        server = configparser.RawConfigParser(strict=False)
        server.optionxform = str  # type: ignore[assignment,method-assign]
        server.read(etc_src / "panda_server.cfg.rpmnew")
        server["server"].update({
            "logdir": str(self.logdir), "cache_dir": str(self.base / "cache"), "home_dir_cwd": str(self.base),
            "backend": "postgres", "dbhost": "127.0.0.1", "dbport": str(self.pg_port), "dbuser": DB_USER,
            "dbpasswd": DB_PASSWORD, "dbname": DB_NAME, "nDBConnection": "2", "usedbtimeout": "False",
            "dbtimeout": "30",
            "schemaPANDA": "panda", "schemaMETA": "pandameta", "schemaPANDAARCH": "pandaarch",
            "schemaJEDI": "panda", "schemaDEFT": "panda",
            "pserverhost": "localhost", "pserverport": str(self.port), "pserverporthttp": str(self.port),
            "pserverhosthttp": "localhost", "pserveralias": "localhost",
            "keyDir": str(self.base / "keys"), "certdir": str(self.base / "certs"),
            "auth_config": str(self.base / "auth"), "token_authType": "None",
            "production_dns": self.certs.pilot.dn,
            "adder_plugins": "any:pandaserver.dataservice.adder_dummy_plugin:AdderDummyPlugin",
            "setupper_plugins": "any:pandaserver.dataservice.setupper_dummy_plugin:SetupperDummyPlugin",
            "closer_plugins": "",
            "record_statuschange": "True", "useJEDI": "False",
        })
        with (etc / "panda_server.cfg").open("w") as fh:
            server.write(fh)
        common = configparser.RawConfigParser(strict=False, inline_comment_prefixes=("#",))
        common.optionxform = str  # type: ignore[assignment,method-assign]
        common.read(etc_src / "panda_common.cfg.rpmnew")
        common["logger"].update({"logdir": str(self.logdir), "log_level": "DEBUG"})
        with (etc / "panda_common.cfg").open("w") as fh:
            common.write(fh)
        self.logdir.mkdir(exist_ok=True)

    # -- processes --------------------------------------------------------
    def _spawn(self, argv: list[str], log: str, path: Path | None = None) -> subprocess.Popen:
        """``path``: a folder put first on PATH (the pilot's node has the tools of hcflask's environment,
        such as rucio-clients' ``rucio`` for stage-out, as a production node has them in its image)."""
        out = (self.logdir / log).open("ab")
        env = self.server_env()
        if path is not None:
            env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.Popen(  # noqa: S603 - fixed argv
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.base,
            start_new_session=True,
        )

    def start_web(self) -> None:
        assert self.certs is not None
        self.web = self._spawn([
            str(self.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
            "--certfile", str(self.certs.host.cert), "--keyfile", str(self.certs.host.key),
            "--ca-certs", str(self.certs.ca_cert), "--cert-reqs", "1", "--do-handshake-on-connect",
            "--workers", "1", "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
            "wsgi_app:application",
        ], "gunicorn.log")
        certs = self.certs
        _wait("panda-server", lambda: _alive(self.url, certs), 60)

    def stop_web(self) -> None:
        _stop_group(self.web)
        self.web = None

    def start_adder(self) -> None:
        """The adder, restarted whenever it ends (one run is 50 passes of up to 10 s)."""
        argv = [str(self.venv / "bin" / "python"), "-m", "pandaserver.daemons.scripts.add_main", "0", "2"]
        self.adder = self._spawn(argv, "adder.log")

        def supervise() -> None:
            while not self._closing.is_set():
                adder = self.adder
                if adder is not None and adder.poll() is not None:
                    self.adder = self._spawn(argv, "adder.log")
                self._closing.wait(1)

        threading.Thread(target=supervise, name="panda-adder", daemon=True).start()

    def start_pilot(self, queues: tuple[str, ...] = QUEUES) -> None:
        assert self.certs is not None
        argv = [sys.executable, str(HERE / "pilot.py"), "--server", self.url, "--cert", str(self.certs.pilot.proxy),
                "--ca-dir", str(self.certs.ca_dir), "--workdir", str(self.base / "pilot")]
        for queue in queues:
            argv += ["--queue", queue]
        self.pilot = self._spawn(argv, "pilot.log", path=Path(sys.executable).parent)

    def start(self) -> PandaTestServer:
        t0 = time.monotonic()
        self.certs = make_certs(self.base / "grid")
        self._write_config()
        t1 = time.monotonic()
        self._start_db()
        t2 = time.monotonic()
        self.start_web()
        t3 = time.monotonic()
        self.start_adder()
        self.start_pilot()
        self.timings = {"certs+config": t1 - t0, "database": t2 - t1, "web server": t3 - t2,
                        "total": time.monotonic() - t0}
        return self

    def close(self) -> None:
        self._closing.set()
        for proc in (self.pilot, self.adder, self.web):
            _stop_group(proc)
        if (self.pg_dir / "data" / "postmaster.pid").exists():
            self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.pg_dir, ignore_errors=True)

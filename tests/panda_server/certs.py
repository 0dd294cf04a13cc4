"""A throw-away certificate authority for the test PanDA server.

PanDA knows who calls it only from the client certificate the web server
verified (``SSL_CLIENT_S_DN``).  The tests need three identities: the
server itself (``localhost``), a user who submits (hcflask), and a pilot
whose DN is listed in ``production_dns`` so it may fetch and update jobs.
EC keys keep the set-up under a second.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

CA_SUBJECT = "/O=hcflask-test/CN=hcflask test CA"
USER_SUBJECT = "/O=hcflask-test/OU=users/CN=hcflask test user"
PILOT_SUBJECT = "/O=hcflask-test/OU=robots/CN=hcflask test pilot"


@dataclasses.dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path
    #: cert + key in one file, the way a grid proxy (X509_USER_PROXY) is laid out
    proxy: Path
    dn: str


@dataclasses.dataclass(frozen=True)
class CertSet:
    ca_cert: Path
    ca_dir: Path  # hashed CA directory, as X509_CERT_DIR expects
    host: Identity
    user: Identity
    pilot: Identity


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(path))
    path.chmod(0o600)


def _issue(base: Path, name: str, subject: str, ca: tuple[Path, Path], extensions: str) -> Identity:
    key, csr, cert, ext = (base / f"{name}{s}" for s in (".key", ".csr", ".pem", ".ext"))
    _key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    ext.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
        "-days", "3", "-sha256", "-extfile", str(ext), "-out", str(cert),
    )
    proxy = base / f"{name}.proxy"
    proxy.write_text(cert.read_text() + key.read_text())
    proxy.chmod(0o600)
    return Identity(cert=cert, key=key, proxy=proxy, dn=subject)


def make_certs(base: Path) -> CertSet:
    """Create the CA and the host, user and pilot certificates under ``base``."""
    base.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = base / "ca.key", base / "ca.pem"
    _key(ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", CA_SUBJECT, "-days", "3", "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", str(ca_cert),
    )
    ca_dir = base / "certificates"
    ca_dir.mkdir(exist_ok=True)
    digest = _openssl("x509", "-hash", "-noout", "-in", str(ca_cert)).strip()
    shutil.copy(ca_cert, ca_dir / f"{digest}.0")
    ca = (ca_cert, ca_key)
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
    host = _issue(
        base, "host", "/O=hcflask-test/CN=localhost", ca,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    user = _issue(base, "user", USER_SUBJECT, ca, client_ext)
    pilot = _issue(base, "pilot", PILOT_SUBJECT, ca, client_ext)
    return CertSet(ca_cert=ca_cert, ca_dir=ca_dir, host=host, user=user, pilot=pilot)

"""A real OpenLDAP server for the tests: Debian's ``slapd`` (installed by
.ci/install-ldap.sh) on a free port and a temporary folder, with StartTLS
(a self-signed certificate made here with ``cryptography``), loaded by
``ldapadd`` with people and ``groupOfNames`` groups.
"""
from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.conftest import terminate

SLAPD = Path("/usr/sbin/slapd")
BASE = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "directory admin password"  # noqa: S105 - a test fixture's secret
#: name -> (password, groups)
PEOPLE = {
    "dave": ("dave password", ["hc-admins"]),
    "erin": ("erin password", ["hc-operators"]),
    "frank": ("frank password", ["hc-viewers"]),
    "grace": ("grace password", []),
}


def missing() -> str | None:
    for tool in (str(SLAPD), "ldapadd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian slapd, ldap-utils: .ci/install-ldap.sh)"
    return None


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _ldif() -> str:
    entries = [f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
               f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people",
               f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups"]
    for name, (password, _) in PEOPLE.items():
        entries.append(f"dn: uid={name},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\n"
                       f"sn: {name}\nuserPassword: {password}")
    groups = sorted({g for _, groups in PEOPLE.values() for g in groups})
    for group in groups:
        members = "\n".join(f"member: uid={n},ou=people,{BASE}" for n, (_, gs) in PEOPLE.items() if group in gs)
        entries.append(f"dn: cn={group},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {group}\n{members}")
    return "\n\n".join(entries) + "\n"


class Slapd:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.cert, key = _certificate(folder)
        (folder / "data").mkdir()
        (folder / "slapd.d").mkdir()
        self.conf = folder / "slapd.conf"
        self.conf.write_text(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n"
            "include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            f"pidfile {folder}/slapd.pid\nTLSCertificateFile {self.cert}\nTLSCertificateKeyFile {key}\n"
            f'database mdb\nsuffix "{BASE}"\nrootdn "{ADMIN_DN}"\nrootpw \"{ADMIN_PASSWORD}\"\n'
            f"directory {folder}/data\n")
        self.log = folder / "slapd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, load: bool = True) -> Slapd:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(SLAPD), "-d", "0", "-h", self.url, "-f", str(self.conf), "-F", str(self.folder / "slapd.d")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"slapd exited:\n{self.log.read_text()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        if load:
            subprocess.run(["ldapadd", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
                           input=_ldif().encode(), capture_output=True, check=True, timeout=30)
        return self

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None

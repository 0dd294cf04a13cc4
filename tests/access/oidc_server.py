"""A real OpenID Connect provider for the tests: npm ``oidc-provider`` run by
``node tests/oidc/provider.mjs`` (installed by .ci/install-oidc.sh).

:class:`OidcServer` writes the provider's clients, users and RSA signing keys
to a JSON file and starts it on a free port; :meth:`rotate` restarts it with a
new key first and the old one second, as an issuer rotates.
:meth:`code_flow` signs a user in as a client application would (Authlib's
``OAuth2Session`` with PKCE, the provider's own login page posted with
requests) and returns the tokens.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc.jwk import RSAKey

from tests.conftest import terminate

ROOT = Path(__file__).resolve().parents[1] / "oidc"
PROVIDER = ROOT / "provider.mjs"
RESOURCE = "urn:hcflask"
USERS = {
    "alice": {"password": "alice password", "groups": ["hc-admins", "staff"]},
    "bob": {"password": "bob password", "groups": ["hc-operators"]},
    "carol": {"password": "carol password", "groups": ["hc-viewers"]},
}
TOOL = "test-tool"  # a confidential client the tests use for API tokens (its redirect is never followed)
TOOL_SECRET = "test tool secret"  # noqa: S105 - a test fixture's secret
TOOL_REDIRECT = "http://127.0.0.1:9/callback"


def missing() -> str | None:
    """Why the provider cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (.ci/install-oidc.sh)"
    if not (ROOT / "node_modules" / "oidc-provider").is_dir():
        return "npm oidc-provider is not installed: run .ci/install-oidc.sh"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_key() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, private=True)
    data = key.as_dict(private=True)
    data.update(kid=key.thumbprint(), use="sig", alg="RS256")
    return data


class OidcServer:
    def __init__(self, folder: Path, app_url: str = "", port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys = [new_key()]
        self.app_url = app_url
        self.client_secret = "hcflask client secret"  # noqa: S105 - a test fixture's secret
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / f"oidc-{self.port}.log"

    def _config(self) -> dict[str, Any]:
        clients = [
            {"client_id": TOOL, "client_secret": TOOL_SECRET, "redirect_uris": [TOOL_REDIRECT]},
            {"client_id": "short-lived", "client_secret": TOOL_SECRET, "redirect_uris": [TOOL_REDIRECT]},
        ]
        if self.app_url:
            clients.append({"client_id": "hcflask", "client_secret": self.client_secret,
                            "redirect_uris": [f"{self.app_url}/login/oidc/callback"],
                            "post_logout_redirect_uris": [f"{self.app_url}/"]})
        return {"issuer": self.issuer, "port": self.port, "jwks": {"keys": self.keys}, "clients": clients,
                "users": USERS, "resource": RESOURCE, "cookie_key": os.urandom(16).hex()}

    def start(self) -> OidcServer:
        config = self.folder / f"oidc-{self.port}.json"
        config.write_text(json.dumps(self._config()))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(["node", str(PROVIDER), str(config)], cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"oidc-provider exited:\n{self.log.read_text()}"
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"oidc-provider did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None

    def rotate(self) -> None:
        """A new signing key first (new tokens), the old one kept second (old tokens still verify)."""
        self.stop()
        self.keys = [new_key(), *self.keys]
        self.start()

    def code_flow(self, user: str, client_id: str = TOOL, resource: str | None = None) -> dict[str, Any]:
        """Sign ``user`` in through the provider's login page; the token response (access and ID token)."""
        metadata = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5).json()
        client = OAuth2Session(client_id, TOOL_SECRET, scope="openid profile", redirect_uri=TOOL_REDIRECT,
                               code_challenge_method="S256")
        verifier = os.urandom(32).hex()
        extra = {"resource": resource} if resource else {}
        url, _ = client.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                 nonce=os.urandom(8).hex(), **extra)
        browser = requests.Session()
        response = browser.get(url, allow_redirects=False, timeout=5)
        for _ in range(10):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                if location.startswith(TOOL_REDIRECT):
                    return dict(client.fetch_token(metadata["token_endpoint"], authorization_response=location,
                                                   code_verifier=verifier, **extra))
                response = browser.get(location, allow_redirects=False, timeout=5)
                continue
            action = re.search(r'action="([^"]+)"', response.text)
            assert response.status_code == 200 and action, response.text[:500]
            response = browser.post(urljoin(response.url, action.group(1)), allow_redirects=False, timeout=5,
                                    data={"login": user, "password": USERS[user]["password"]})
        raise AssertionError(f"the code flow did not end: {response.status_code} {response.text[:300]}")

"""Fixtures for sign-in: the real OIDC provider (npm ``oidc-provider``) and a
real OpenLDAP (Debian ``slapd``), each started on a free port in a temporary
folder.  Missing one is a skip here and a failure in CI (``CI=true``), as for
the other real servers."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from hcflask.extensions import db
from tests.access import oidc_server
from tests.access.oidc_server import OidcServer
from tests.conftest import make_app

#: the rules of every test instance: the provider's and the directory's groups to roles
ROLES = {"admin": ["hc-admins"], "operator": ["hc-operators"], "viewer": ["hc-viewers"]}


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcServer]:
    reason = oidc_server.missing()
    if reason:
        unavailable(reason)
    server = OidcServer(tmp_path_factory.mktemp("oidc")).start()
    yield server
    server.stop()


def oidc_config(server: OidcServer, folder: Path, client_id: str = "hcflask") -> dict[str, Any]:
    secret = folder / "oidc-secret"
    secret.write_text(server.client_secret if client_id == "hcflask" else oidc_server.TOOL_SECRET)
    return {"oidc": {"issuer": server.issuer, "client_id": client_id, "client_secret_file": str(secret),
                     "audience": oidc_server.RESOURCE, "clock_skew": 0, "roles": ROLES, "label": "Test IdP"},
            "ldap": {}}


@pytest.fixture
def oidc_app(tmp_path: Path, oidc: OidcServer) -> Iterator[Flask]:
    """An instance that accepts the provider's access tokens on its API."""
    app = make_app(tmp_path / "instance", AUTH=oidc_config(oidc, tmp_path, oidc_server.TOOL))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Any]:
    from tests.access import ldap_server

    reason = ldap_server.missing()
    if reason:
        unavailable(reason)
    folder = tmp_path / "ldap"
    folder.mkdir()
    server = ldap_server.Slapd(folder).start()
    yield server
    server.stop()


def ldap_config(server: Any, folder: Path, **overrides: Any) -> dict[str, Any]:
    from tests.access import ldap_server

    secret = folder / "ldap-bind"
    secret.write_text(ldap_server.ADMIN_PASSWORD)
    return {"oidc": {}, "ldap": {"url": server.url, "tls": "starttls", "ca_file": str(server.cert),
                                 "bind_dn": ldap_server.ADMIN_DN, "bind_password_file": str(secret),
                                 "user_base": f"ou=people,{ldap_server.BASE}",
                                 "group_base": f"ou=groups,{ldap_server.BASE}", "roles": ROLES, "timeout": 3,
                                 **overrides}}


@pytest.fixture
def ldap_app(tmp_path: Path, slapd: Any) -> Iterator[Flask]:
    app = make_app(tmp_path / "instance", AUTH=ldap_config(slapd, tmp_path))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()

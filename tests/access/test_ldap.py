"""LDAP sign-in against a real OpenLDAP (slapd), over StartTLS with the server's certificate.

Group to role, wrong password, unknown user, a user in no group, a filter
injection, and the server stopped: the form says so (never a 500) and local
accounts still sign in.
"""
from __future__ import annotations

import subprocess
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hcflask.access import settings
from hcflask.access.ldap import authenticate
from hcflask.extensions import db
from hcflask.models import User
from tests.access.ldap_server import PEOPLE
from tests.conftest import ADMIN_PASSWORD, csrf_token


def login(client: FlaskClient, username: str, password: str) -> Any:
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_token(client)})


def test_directory_users_sign_in_with_their_groups_role(ldap_app: Flask) -> None:
    for name, role in (("dave", "admin"), ("erin", "operator"), ("frank", "viewer")):
        client = ldap_app.test_client()
        assert login(client, name, PEOPLE[name][0]).status_code == 302, name
        assert f'data-role="{role}"' in client.get("/").get_data(as_text=True)
    with ldap_app.app_context():
        users = {u.username: (u.role, u.source, u.password_hash) for u in db.session.scalars(select(User))}
    assert users == {"dave": ("admin", "ldap", ""), "erin": ("operator", "ldap", ""), "frank": ("viewer", "ldap", "")}


def test_refusals(ldap_app: Flask) -> None:
    client = ldap_app.test_client()
    for name, password in (("dave", "wrong password"), ("nobody", "whatever it is"), ("*", "dave password"),
                           ("dave)(uid=*", "dave password")):
        refused = login(client, name, password)
        assert refused.status_code == 401 and "Unknown user or wrong password." in refused.get_data(as_text=True)
    no_group = login(client, "grace", PEOPLE["grace"][0])
    assert no_group.status_code == 401
    assert "none of your groups is given a role" in no_group.get_data(as_text=True)
    with ldap_app.app_context():
        assert db.session.scalars(select(User)).all() == []
        oidc, ldap = settings.load(ldap_app.config)
    assert ldap is not None and authenticate(ldap, "dave", "") is None  # an empty password is an anonymous bind


def test_server_stopped(ldap_app: Flask, slapd: Any, admin: Any) -> None:
    slapd.stop()
    client = ldap_app.test_client()
    down = login(client, "dave", PEOPLE["dave"][0])
    assert down.status_code == 401
    assert "sign-in unavailable: LDAP server not answering" in down.get_data(as_text=True)
    assert login(client, "admin", ADMIN_PASSWORD).status_code == 302  # local accounts still sign in


def test_role_follows_the_groups_at_each_sign_in(ldap_app: Flask, slapd: Any) -> None:
    from tests.access.ldap_server import ADMIN_DN, ADMIN_PASSWORD, BASE

    client = ldap_app.test_client()
    assert login(client, "erin", PEOPLE["erin"][0]).status_code == 302
    change = (f"dn: cn=hc-admins,ou=groups,{BASE}\nchangetype: modify\nadd: member\n"
              f"member: uid=erin,ou=people,{BASE}\n")
    subprocess.run(["ldapmodify", "-x", "-H", slapd.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
                   input=change.encode(), check=True, capture_output=True, timeout=30)
    again = ldap_app.test_client()
    assert login(again, "erin", PEOPLE["erin"][0]).status_code == 302
    with ldap_app.app_context():
        assert db.session.scalar(select(User.role).where(User.username == "erin")) == "admin"

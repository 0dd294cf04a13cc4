"""``[auth.oidc]`` and ``[auth.ldap]`` mistakes stop the start with the key named."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hcflask.access import role_for_groups
from hcflask.access.oidc import groups_of
from hcflask.access.settings import load
from hcflask.config import ConfigError


def _auth(tmp_path: Path, oidc: dict[str, Any] | None = None, ldap: dict[str, Any] | None = None) -> Any:
    return load({"AUTH": {"oidc": oidc or {}, "ldap": ldap or {}}})


@pytest.mark.parametrize(("section", "values", "message"), [
    ("oidc", {"client_id": "x"}, "auth.oidc.issuer: required"),
    ("oidc", {"issuer": "https://i", "client_id": "x", "client_secret_file": "/nonexistent"},
     "auth.oidc.client_secret_file: cannot read /nonexistent"),
    ("oidc", {"issuer": "https://i", "client_id": "x", "client_secret_file": "SECRET", "roles": {"boss": ["g"]}},
     "auth.oidc.roles.boss: unknown role"),
    ("oidc", {"issuer": "https://i", "client_id": "x", "client_secret_file": "SECRET", "clinet": 1},
     "auth.oidc.clinet: unknown key"),
    ("ldap", {"url": "ldap://h", "user_base": "dc=x", "tls": "ldaps"}, "auth.ldap.url: tls = 'ldaps' needs an ldaps://"),
    ("ldap", {"url": "ldap://h", "user_base": "dc=x", "user_filter": "(uid=*)"}, "auth.ldap.user_filter: must contain"),
    ("ldap", {"url": "ldap://h", "user_base": "dc=x", "default_role": "root"}, "auth.ldap.default_role: unknown role"),
])
def test_mistakes_name_the_key(tmp_path: Path, section: str, values: dict[str, Any], message: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    values = {k: (str(secret) if v == "SECRET" else v) for k, v in values.items()}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")):
        _auth(tmp_path, **{section: values})


def test_rules_and_claims() -> None:
    rules = {"admin": ["hc-admins"], "operator": ["Shifters"], "viewer": ["*"]}
    assert role_for_groups(["shifters", "hc-admins"], rules) == "admin"  # the highest wins
    assert role_for_groups(["SHIFTERS"], rules) == "operator"  # case-insensitive
    assert role_for_groups([], rules) == "viewer"
    assert role_for_groups(["x"], {"admin": ["a"]}) == "" and role_for_groups(["x"], {}, "viewer") == "viewer"
    assert groups_of({"realm_access": {"roles": ["a", "b"]}}, "realm_access.roles") == ["a", "b"]
    assert groups_of({"wlcg.groups": ["/atlas"]}, "wlcg.groups") == ["/atlas"]
    assert groups_of({"groups": "one"}, "groups") == ["one"] and groups_of({}, "groups") == []

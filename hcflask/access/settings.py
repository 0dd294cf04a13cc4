"""``[auth]``, ``[auth.oidc]`` and ``[auth.ldap]`` of hc.toml, checked at start-up.

A typo or a missing key is an error naming it (``auth.oidc.issuer: required``),
so a site never runs with sign-in half configured.  Secrets (the OIDC client
secret, the LDAP bind password) are read from files named here, never
written into hc.toml.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcflask.access import ROLES
from hcflask.config import ConfigError

OIDC_KEYS = {"issuer", "client_id", "client_secret_file", "scopes", "groups_claim", "username_claim",
             "audience", "roles", "default_role", "clock_skew", "label"}
LDAP_KEYS = {"url", "tls", "ca_file", "bind_dn", "bind_password_file", "user_base", "user_filter",
             "group_base", "group_filter", "group_name", "roles", "default_role", "timeout"}
TLS_MODES = ("ldaps", "starttls", "none")


@dataclass(frozen=True)
class Oidc:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str = "openid profile"
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    #: the ``aud`` an access token must carry to be accepted on the API ('' = bearer JWTs refused)
    audience: str = ""
    roles: dict[str, list[str]] = field(default_factory=dict)
    default_role: str = ""
    clock_skew: int = 30
    label: str = "single sign-on"


@dataclass(frozen=True)
class Ldap:
    url: str
    user_base: str
    tls: str = "starttls"
    ca_file: str = ""
    bind_dn: str = ""
    bind_password: str = ""
    user_filter: str = "(uid={username})"
    group_base: str = ""
    group_filter: str = "(&(objectClass=groupOfNames)(member={dn}))"
    group_name: str = "cn"
    roles: dict[str, list[str]] = field(default_factory=dict)
    default_role: str = ""
    timeout: float = 5.0


def _secret(section: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{section}.{key}: expected the path of a file holding the secret")
    try:
        return Path(value).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{section}.{key}: cannot read {value}: {exc.strerror}") from None


def _roles(section: str, data: Mapping[str, Any]) -> dict[str, list[str]]:
    rules = data.get("roles", {})
    if not isinstance(rules, dict):
        raise ConfigError(f"{section}.roles: expected a table like {{admin = [\"hc-admins\"]}}")
    for role, groups in rules.items():
        if role not in ROLES:
            raise ConfigError(f"{section}.roles.{role}: unknown role (one of {', '.join(ROLES)})")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ConfigError(f"{section}.roles.{role}: expected a list of group names")
    default = data.get("default_role", "")
    if default not in ("", *ROLES):
        raise ConfigError(f"{section}.default_role: unknown role {default!r} (one of {', '.join(ROLES)}, or '')")
    return {role: list(groups) for role, groups in rules.items()}


def _check_keys(section: str, data: Mapping[str, Any], known: set[str]) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"{section}.{key}: unknown key")


def _text(section: str, data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{section}.{key}: required")
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{section}.{key}: expected a string, got {value!r}")
    return value


def oidc(auth: Mapping[str, Any]) -> Oidc | None:
    data = auth.get("oidc") or {}
    if not data:
        return None
    section = "auth.oidc"
    _check_keys(section, data, OIDC_KEYS)
    skew = data.get("clock_skew", 30)
    if not isinstance(skew, int) or isinstance(skew, bool) or not 0 <= skew <= 600:
        raise ConfigError(f"{section}.clock_skew: expected whole seconds from 0 to 600, got {skew!r}")
    return Oidc(issuer=_text(section, data, "issuer"), client_id=_text(section, data, "client_id"),
                client_secret=_secret(section, "client_secret_file", data.get("client_secret_file")),
                scopes=_text(section, data, "scopes", "openid profile"),
                groups_claim=_text(section, data, "groups_claim", "groups"),
                username_claim=_text(section, data, "username_claim", "preferred_username"),
                audience=_text(section, data, "audience", ""), roles=_roles(section, data),
                default_role=data.get("default_role", ""), clock_skew=skew,
                label=_text(section, data, "label", "single sign-on"))


def ldap(auth: Mapping[str, Any]) -> Ldap | None:
    data = auth.get("ldap") or {}
    if not data:
        return None
    section = "auth.ldap"
    _check_keys(section, data, LDAP_KEYS)
    tls = _text(section, data, "tls", "starttls")
    url = _text(section, data, "url")
    if tls not in TLS_MODES:
        raise ConfigError(f"{section}.tls: one of {', '.join(TLS_MODES)}, got {tls!r}")
    if (tls == "ldaps") != url.startswith("ldaps://"):
        raise ConfigError(f"{section}.url: tls = {tls!r} needs an {'ldaps' if tls == 'ldaps' else 'ldap'}:// URL")
    user_filter = _text(section, data, "user_filter", "(uid={username})")
    if "{username}" not in user_filter:
        raise ConfigError(f"{section}.user_filter: must contain {{username}}")
    timeout = data.get("timeout", 5.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
        raise ConfigError(f"{section}.timeout: expected seconds from 0 to 60, got {timeout!r}")
    bind_dn = _text(section, data, "bind_dn", "")
    password = _secret(section, "bind_password_file", data.get("bind_password_file")) if bind_dn else ""
    return Ldap(url=url, user_base=_text(section, data, "user_base"), tls=tls,
                ca_file=_text(section, data, "ca_file", ""), bind_dn=bind_dn, bind_password=password,
                user_filter=user_filter, group_base=_text(section, data, "group_base", ""),
                group_filter=_text(section, data, "group_filter", "(&(objectClass=groupOfNames)(member={dn}))"),
                group_name=_text(section, data, "group_name", "cn"), roles=_roles(section, data),
                default_role=data.get("default_role", ""), timeout=float(timeout))


def load(config: Mapping[str, Any]) -> tuple[Oidc | None, Ldap | None]:
    """Both sections from the app's config (``AUTH``); an unknown ``[auth]`` key is an error."""
    auth = config.get("AUTH") or {}
    _check_keys("auth", auth, {"oidc", "ldap"})
    return oidc(auth), ldap(auth)

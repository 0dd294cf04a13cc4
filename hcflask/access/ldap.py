"""Password sign-in against the site's LDAP server (ldap3).

The service account (``bind_dn``) finds the user's entry by ``user_filter``,
the user's own bind checks the password, and the groups found by
``group_filter`` give the role.  Every value put into a filter is escaped.
A server that does not answer is :class:`Unavailable` (the login form says
so; local accounts still sign in), never an exception page.
"""
from __future__ import annotations

import math
import ssl
from dataclasses import dataclass

from ldap3 import AUTO_BIND_NO_TLS, AUTO_BIND_TLS_BEFORE_BIND, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError, LDAPException, LDAPSocketOpenError, LDAPSocketReceiveError
from ldap3.utils.conv import escape_filter_chars

from hcflask.access import role_for_groups
from hcflask.access.settings import Ldap


class Unavailable(Exception):
    """The directory cannot be asked now; the message is for the login form."""


@dataclass(frozen=True)
class Person:
    username: str
    dn: str
    groups: list[str]
    role: str


def _server(settings: Ldap) -> Server:
    tls = None
    if settings.tls != "none":
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file or None)
    return Server(settings.url, use_ssl=settings.tls == "ldaps", tls=tls, connect_timeout=settings.timeout)


def _connect(settings: Ldap, server: Server, user: str | None, password: str | None) -> Connection:
    bind = AUTO_BIND_TLS_BEFORE_BIND if settings.tls == "starttls" else AUTO_BIND_NO_TLS
    # ldap3 packs the receive timeout into a socket option: whole seconds only
    return Connection(server, user=user, password=password, auto_bind=bind,
                      receive_timeout=max(1, math.ceil(settings.timeout)),
                      raise_exceptions=False, read_only=True)


def authenticate(settings: Ldap, username: str, password: str) -> Person | None:
    """The person if the directory knows ``username`` with this ``password``, else None.

    An empty password is refused before any bind: LDAP treats it as an
    anonymous bind, which succeeds.
    """
    if not username or not password:
        return None
    server = _server(settings)
    try:
        try:
            service = _connect(settings, server, settings.bind_dn or None, settings.bind_password or None)
        except LDAPBindError:
            raise Unavailable("sign-in unavailable: the LDAP bind account is refused") from None
        with service:
            query = settings.user_filter.format(username=escape_filter_chars(username))
            service.search(settings.user_base, query, SUBTREE, attributes=[])
            found = [entry for entry in service.response or [] if entry.get("type") == "searchResEntry"]
            if len(found) != 1:
                return None
            dn = found[0]["dn"]
            try:
                _connect(settings, server, dn, password).unbind()
            except LDAPBindError:
                return None
            groups: list[str] = []
            if settings.group_base:
                query = settings.group_filter.format(dn=escape_filter_chars(dn),
                                                     username=escape_filter_chars(username))
                service.search(settings.group_base, query, SUBTREE, attributes=[settings.group_name])
                for entry in service.response or []:
                    if entry.get("type") == "searchResEntry":
                        value = entry["attributes"].get(settings.group_name)
                        groups.extend(value if isinstance(value, list) else [value] if value else [])
    except (LDAPSocketOpenError, LDAPSocketReceiveError):
        raise Unavailable("sign-in unavailable: LDAP server not answering") from None
    except LDAPException as exc:
        raise Unavailable(f"sign-in unavailable: LDAP error: {exc}") from None
    role = role_for_groups([str(g) for g in groups], settings.roles, settings.default_role)
    return Person(username, dn, [str(g) for g in groups], role)

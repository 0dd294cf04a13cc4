"""The site's OpenID Connect issuer: its metadata, its signing keys, and the
check of a bearer access token (a JWT) presented to the API.

The keys (JWKS) are cached per process and fetched again when a token names
a key id the cache does not know, so a key rotation at the issuer needs no
restart (at most one fetch every :data:`REFETCH_SECONDS`, so forged key ids
cannot make hcflask hammer the issuer).  Only asymmetric algorithms are
accepted: ``alg: none`` and HMAC tokens (signed with a public key as secret)
are refused.  The JOSE work is joserfc's (Authlib's own JOSE library).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from hcflask.access import role_for_groups
from hcflask.access.settings import Oidc

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
REFETCH_SECONDS = 2.0
TIMEOUT = 5.0


class Rejected(Exception):
    """A bearer token that is not accepted; the message says why (it goes into the 401 and the audit log)."""


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def groups_of(claims: Mapping[str, Any], path: str) -> list[str]:
    """The groups in ``claims`` at a dotted ``path`` (``groups``, ``realm_access.roles``, ``wlcg.groups``).

    A dotted name present as one key (IAM's ``wlcg.groups``) wins over the path.
    """
    value: Any = claims.get(path)
    if value is None:
        value = claims
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(g) for g in value]
    return []


def identity(settings: Oidc, claims: Mapping[str, Any]) -> tuple[str, str]:
    """The user name and the role the claims give ('' role: none of the rules matched)."""
    username = str(claims.get(settings.username_claim) or claims.get("sub") or "")
    return username[:64], role_for_groups(groups_of(claims, settings.groups_claim), settings.roles,
                                          settings.default_role)


class Issuer:
    """One issuer's metadata and keys, shared by the threads of a process."""

    def __init__(self, settings: Oidc) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched = 0.0

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            try:
                response = requests.get(discovery_url(self.settings.issuer), timeout=TIMEOUT)
                response.raise_for_status()
                data = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise Rejected(f"the issuer {self.settings.issuer} is not answering: {exc}") from None
            if data.get("issuer") != self.settings.issuer:
                raise Rejected(f"the issuer's metadata names issuer {data.get('issuer')!r}, "
                               f"not {self.settings.issuer!r}")
            self._metadata = data
        return self._metadata

    def keys(self, refresh: bool = False) -> KeySet:
        with self._lock:
            stale = refresh and time.monotonic() - self._fetched >= REFETCH_SECONDS
            if self._keys is None or stale:
                try:
                    response = requests.get(self.metadata()["jwks_uri"], timeout=TIMEOUT)
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
                except (requests.RequestException, ValueError, KeyError, JoseError) as exc:
                    raise Rejected(f"cannot read the issuer's keys: {exc}") from None
                self._fetched = time.monotonic()
            return self._keys

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token for this service, or :class:`Rejected`."""
        settings = self.settings
        if not settings.audience:
            raise Rejected("this instance accepts no access tokens of the issuer ([auth.oidc] audience unset)")
        try:
            try:
                decoded = jwt.decode(token, self.keys(), algorithms=list(ALGORITHMS))
            except InvalidKeyIdError:
                decoded = jwt.decode(token, self.keys(refresh=True), algorithms=list(ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                leeway=settings.clock_skew, iss={"essential": True, "value": settings.issuer},
                aud={"essential": True, "value": settings.audience}, exp={"essential": True})
            registry.validate(decoded.claims)
        except InvalidKeyIdError:
            raise Rejected("token signed by a key the issuer does not publish") from None
        except JoseError as exc:
            raise Rejected(f"token refused: {exc.error}: {exc.description or ''}".rstrip(": ")) from None
        except ValueError as exc:  # not a JWT at all
            raise Rejected(f"token refused: not a JWT ({exc})") from None
        return dict(decoded.claims)

"""Access tokens of the site's issuer on the API, against the real provider.

Accepted with the role its groups give; expired, wrong audience, wrong
issuer, ``alg: none`` and a token signed by another key are all 401; after
the provider rotates its key, old and new tokens work.
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from flask import Flask
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from hcflask.access import oidc as issuer_module
from hcflask.extensions import db
from hcflask.models import AuditEntry, User
from tests.access.oidc_server import RESOURCE, OidcServer
from tests.factories import make_queue


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str, part: int = 1) -> dict[str, Any]:
    """A JWT's payload (``part=0``: its header), unchecked: only to look at what the provider issued."""
    payload = token.split(".")[part]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _status(app: Flask, token: str) -> Any:
    return app.test_client().post("/api/v1/queues/q1/status", json={"status": "test"}, headers=bearer(token))


def test_issuer_tokens_carry_their_role(oidc_app: Flask, oidc: OidcServer) -> None:
    with oidc_app.app_context():
        make_queue("q1")
    client = oidc_app.test_client()
    alice, bob, carol = (oidc.code_flow(u)["access_token"] for u in ("alice", "bob", "carol"))
    assert client.post("/api/v1/queues", json={"name": "q2", "backend": "local"}, headers=bearer(alice)).status_code \
        == 201
    refused = client.post("/api/v1/queues", json={"name": "q3", "backend": "local"}, headers=bearer(bob))
    assert refused.status_code == 403 and refused.get_json()["error"]["reason"] == "role operator may not queue.edit"
    assert _status(oidc_app, bob).status_code == 200
    assert _status(oidc_app, carol).status_code == 403
    with oidc_app.app_context():
        users = {u.username: (u.role, u.source) for u in db.session.scalars(select(User))}
        events = [(e.actor, e.status) for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert users == {"alice": ("admin", "oidc"), "bob": ("operator", "oidc"), "carol": ("viewer", "oidc")}
    assert events == [("alice", 201), ("bob", 403), ("bob", 200), ("carol", 403)]


def test_bad_tokens_are_401(oidc_app: Flask, oidc: OidcServer, tmp_path: Path) -> None:
    with oidc_app.app_context():
        make_queue("q1")
    good = oidc.code_flow("alice")["access_token"]
    assert _status(oidc_app, good).status_code == 200

    expired = oidc.code_flow("alice", client_id="short-lived")["access_token"]
    time.sleep(2.1)  # its lifetime is 1 s; the instance allows no clock skew
    other_audience = oidc.code_flow("alice", resource="urn:other")["access_token"]
    assert claims_of(other_audience)["aud"] == "urn:other"

    # another issuer signing with the very same key: only "iss" is wrong
    elsewhere = OidcServer(tmp_path)
    elsewhere.keys = oidc.keys
    try:
        wrong_issuer = elsewhere.start().code_flow("alice")["access_token"]
    finally:
        elsewhere.stop()

    claims = claims_of(good)
    unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                        for part in ({"alg": "none", "typ": "JWT"}, claims)) + "."
    stranger = RSAKey.generate_key(2048, private=True)
    known_kid = oidc.keys[0]["kid"]
    forged = jwt.encode({"alg": "RS256", "kid": known_kid}, claims, stranger)  # the issuer's kid, another key
    unknown = jwt.encode({"alg": "RS256", "kid": "not-published"}, claims, stranger)

    reasons = {}
    for name, token in {"expired": expired, "audience": other_audience, "issuer": wrong_issuer,
                        "alg none": unsigned, "other key": forged, "unknown kid": unknown,
                        "not a jwt": "garbage"}.items():
        response = _status(oidc_app, token)
        assert response.status_code == 401, (name, response.get_json())
        reasons[name] = response.get_json()["error"]["reason"]
    assert "exp" in reasons["expired"] and "aud" in reasons["audience"] and "iss" in reasons["issuer"]
    assert "does not publish" in reasons["unknown kid"]
    with oidc_app.app_context():
        refused = db.session.scalars(select(AuditEntry).where(AuditEntry.status == 401)).all()
    assert len(refused) == 7 and all(e.actor == "anonymous" and e.reason for e in refused)


def test_key_rotation(oidc_app: Flask, oidc: OidcServer) -> None:
    with oidc_app.app_context():
        make_queue("q1")
    before = oidc.code_flow("bob")["access_token"]
    assert _status(oidc_app, before).status_code == 200
    oidc.rotate()
    after = oidc.code_flow("bob")["access_token"]
    assert claims_of(after, 0)["kid"] != claims_of(before, 0)["kid"]
    time.sleep(issuer_module.REFETCH_SECONDS)  # the instance asks for the keys at most this often
    assert _status(oidc_app, after).status_code == 200
    assert _status(oidc_app, before).status_code == 200
    assert RESOURCE == claims_of(after)["aud"]

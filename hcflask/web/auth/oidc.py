"""Sign-in through the site's OpenID Connect issuer, with Authlib's Flask client:
discovery, the authorization code flow with PKCE (S256), state and nonce, and
the ID token checked against the issuer's keys.  The first sign-in creates
the user; their role follows the groups claim at every sign-in."""
from __future__ import annotations

from typing import Any

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask_login import login_user
from requests import RequestException

from hcflask.access.accounts import external_user
from hcflask.access.oidc import discovery_url, identity
from hcflask.access.settings import Oidc
from hcflask.models import ValidationError
from hcflask.web.auth import _safe_next, bp, configured

CLIENT = "site"


def register_client(app: Flask, settings: Oidc) -> None:
    oauth = OAuth(app)
    oauth.register(CLIENT, client_id=settings.client_id, client_secret=settings.client_secret,
                   server_metadata_url=discovery_url(settings.issuer),
                   client_kwargs={"scope": settings.scopes, "code_challenge_method": "S256", "timeout": 10})


def _client() -> Any:
    return current_app.extensions["authlib.integrations.flask_client"].create_client(CLIENT)


@bp.route("/login/oidc")
def oidc_login() -> Any:
    if configured("oidc") is None:
        return redirect(url_for("auth.login"))
    session["oidc_next"] = _safe_next(request.args.get("next"))
    try:
        return _client().authorize_redirect(url_for("auth.oidc_callback", _external=True))
    except (RequestException, OAuthError, ValueError) as exc:
        flash(f"sign-in unavailable: the OIDC issuer is not answering ({exc}).", "error")
        return redirect(url_for("auth.login"))


@bp.route("/login/oidc/callback")
def oidc_callback() -> Any:
    oidc = configured("oidc")
    if oidc is None:
        return redirect(url_for("auth.login"))
    client = _client()
    try:
        token = client.authorize_access_token(leeway=oidc.clock_skew)
        claims = dict(token.get("userinfo") or {})
        if oidc.groups_claim.split(".")[0] not in claims and oidc.groups_claim not in claims:
            claims.update(client.userinfo(token=token))
        username, role = identity(oidc, claims)
        user = external_user(username, "oidc", role)
    except ValidationError as exc:
        flash(f"Sign-in refused: {exc.reason}.", "error")
        return redirect(url_for("auth.login"))
    except (OAuthError, RequestException, ValueError) as exc:
        flash(f"Sign-in failed: {exc}.", "error")
        return redirect(url_for("auth.login"))
    login_user(user)
    session["oidc_id_token"] = token.get("id_token")
    return redirect(session.pop("oidc_next", None) or url_for("ui.home"))


def end_session_url(id_token: str) -> str | None:
    """The issuer's end-session page (RP-initiated logout), or None if it offers none."""
    try:
        return str(_client().create_logout_url(post_logout_redirect_uri=url_for("ui.home", _external=True),
                                               id_token_hint=id_token)["url"])
    except (RuntimeError, RequestException, OAuthError, ValueError):
        return None

"""API tokens: lifetimes and revocation, shared by the CLI and the tokens page."""
from __future__ import annotations

import re
from datetime import timedelta

from hcflask.models import ApiToken, Conflict, ValidationError, utcnow

UNITS = {"d": "days", "h": "hours", "m": "minutes"}
#: at most about ten years
MAX_DAYS = 3660


def parse_lifetime(text: str, field: str = "expires") -> timedelta:
    """``90d``, ``12h``, ``30m`` → a timedelta (1 minute to ten years), else a ValidationError naming ``field``."""
    match = re.fullmatch(r"([0-9]{1,7})([dhm])", text.strip())
    if not match:
        raise ValidationError(field, f"expected a lifetime such as 90d, 12h or 30m, got {text!r}")
    lifetime = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(minutes=1) <= lifetime <= timedelta(days=MAX_DAYS):
        raise ValidationError(field, f"must be between 1m and {MAX_DAYS}d, got {text!r}")
    return lifetime


def revoke(token: ApiToken) -> None:
    """Revoke ``token`` now (409 if it is revoked already); the caller commits."""
    if token.revoked_at is not None:
        raise Conflict("token", f"token {token.id} is revoked already")
    token.revoked_at = utcnow()

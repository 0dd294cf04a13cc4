"""Users (local, or from the site's OIDC issuer or LDAP), their role, and their API tokens."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from hcflask.access import SCOPES as SCOPES  # re-exported: read, operate, admin
from hcflask.access import allowed
from hcflask.extensions import Model, db
from hcflask.models.common import iso, utcnow

TOKEN_PREFIX = "hct_"  # noqa: S105 - a prefix, not a secret
#: where an account comes from: ``local`` has a password here; the others sign in at the site
SOURCES = ("local", "oidc", "ldap")


class User(UserMixin, Model):
    """One person.  ``role`` is set by ``hc user add --role`` for a local account, and
    follows the site's groups at each sign-in for an OIDC or LDAP one.  A disabled
    user can neither sign in nor use a token; their rows and history stay."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    source: Mapped[str] = mapped_column(String(16), default="local")
    disabled: Mapped[bool] = mapped_column(default=False)
    #: IANA zone the pages show times in ('' = UTC); the API always answers UTC
    timezone: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_active(self) -> bool:
        """Flask-Login refuses to sign in an inactive user."""
        return not self.disabled

    def may(self, action: str) -> bool:
        """The permission table's answer for this user (nothing when disabled)."""
        return not self.disabled and allowed(self.role, action)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Only a local account has a password here (the others have an empty hash)."""
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)


class ApiToken(Model):
    """Only a hash of the token is stored; the token is shown once, at creation.

    A token has a scope (``read``, ``operate`` or ``admin``: it caps its user's
    role, see :func:`hcflask.access.cap`), may expire, and is revoked
    by setting ``revoked_at`` (the row stays, for the audit log).
    """

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    @staticmethod
    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user: User, name: str = "", scope: str = "admin",
              expires_at: datetime | None = None) -> tuple[ApiToken, str]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls(user=user, name=name, token_hash=cls.digest(token), scope=scope, expires_at=expires_at)
        db.session.add(row)
        return row, token

    @classmethod
    def lookup(cls, token: str) -> ApiToken | None:
        """The token's row if it is valid now (not revoked, not expired)."""
        row = db.session.scalar(select(cls).where(cls.token_hash == cls.digest(token)))
        if row is None or not row.valid:
            return None
        return row

    @property
    def valid(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.valid else "expired"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user.username, "name": self.name, "scope": self.scope,
                "state": self.state, "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "revoked_at": iso(self.revoked_at), "last_used_at": iso(self.last_used_at)}

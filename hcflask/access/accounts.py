"""Accounts that come from the site (OIDC, LDAP), and the one name each person
goes by in every log: the user name (``alice``) on the web and the API,
``cli:<unix user>`` on the command line."""
from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import ValidationError

if TYPE_CHECKING:
    from hcflask.models import User


def cli_actor() -> str:
    """The person at the command line: ``cli:root`` (hc has no login there; the unix user is who it is)."""
    return f"cli:{getpass.getuser()}"


def actor_of(user: User) -> str:
    return user.username


def external_user(username: str, source: str, role: str) -> User:
    """The user signing in through ``source``, created at their first sign-in; their
    role follows the site's groups each time.  Refused (ValidationError) when the
    groups give no role, the name belongs to an account of another source, or
    an admin disabled the user here."""
    from hcflask.models import User  # here: the CLI, which imports cli_actor, never declares the users

    if not username:
        raise ValidationError("username", f"the {source} sign-in gave no user name")
    if not role:
        raise ValidationError("role", f"{username}: none of your groups is given a role on this instance")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, source=source, role=role, password_hash="")
        db.session.add(user)
    elif user.source != source:
        raise ValidationError("username", f"{username} is a {user.source} account here, not a {source} one")
    elif user.disabled:
        raise ValidationError("username", f"{username} is disabled on this instance")
    elif user.role == role:
        return user  # nothing changed: a bearer token's every request writes nothing
    user.role = role
    db.session.commit()
    return user

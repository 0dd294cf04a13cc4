"""Who may do what: the roles, the one permission table, and group-to-role rules.

The UI, the API, the CLI's ``hc user`` and docs/admin.md all read
:data:`PERMISSIONS`, so a right is granted in exactly one place.  Roles are
ordered (``viewer`` < ``operator`` < ``admin``): each one can do all the
lower ones can.  Sign-in through OIDC or LDAP maps the site's groups to a
role with :func:`role_for_groups`; a token's scope caps its user's role.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ROLES = ("viewer", "operator", "admin")
#: hcflask's own API token scopes, in the order of the roles they allow at most
SCOPES = ("read", "operate", "admin")
SCOPE_ROLE = dict(zip(SCOPES, ROLES, strict=True))
ROLE_SCOPE = dict(zip(ROLES, SCOPES, strict=True))

#: action -> (lowest role allowed, what it covers); the only list of rights
PERMISSIONS: dict[str, tuple[str, str]] = {
    "read": ("viewer", "pages, plots, reports and the API's reads (anonymous too unless read_requires_login)"),
    "account": ("viewer", "change one's own password (local accounts) and display time zone; own API tokens"),
    "test.start": ("operator", "start a test from a template"),
    "test.cancel": ("operator", "cancel a test"),
    "queue.status": ("operator", "set a queue online, offline or test"),
    "robot.switch": ("operator", "switch the robot's auto-exclusion on or off"),
    "queue.edit": ("admin", "create, edit and delete queues"),
    "template.edit": ("admin", "create, edit, activate, deactivate and delete templates"),
    "queue.commission": ("admin", "commission a queue: install the catalogue's probes and run them on it"),
    "robot.baseline": ("admin", "pin a metric band's baseline"),
    "user.manage": ("admin", "list, disable and remove users; see and revoke everyone's tokens"),
    "audit.read": ("admin", "read the audit log"),
}


def rank(role: str) -> int:
    """0 for viewer, 2 for admin; -1 for no role (a disabled or unknown user)."""
    return ROLES.index(role) if role in ROLES else -1


def allowed(role: str, action: str) -> bool:
    """May ``role`` do ``action``?  An action missing from the table is a programming error."""
    return rank(role) >= rank(PERMISSIONS[action][0])


def cap(role: str, scope: str) -> str:
    """A token's effective role: its user's role, at most what its scope allows."""
    limit = SCOPE_ROLE.get(scope, "viewer")
    return role if rank(role) <= rank(limit) else limit


def role_for_groups(groups: Iterable[str], rules: Mapping[str, Any], default: str = "") -> str:
    """The highest role whose rule lists one of ``groups`` (``"*"`` matches anyone), else ``default``.

    ``rules`` is ``{"admin": ["hc-admins"], "operator": [...], "viewer": ["*"]}``: the
    shape of ``[auth.oidc.roles]`` and ``[auth.ldap.roles]``.  Group names compare
    case-insensitively (LDAP DNs and cn values do).
    """
    have = {g.lower() for g in groups}
    for role in reversed(ROLES):
        wanted = {str(g).lower() for g in rules.get(role, [])}
        if "*" in wanted or have & wanted:
            return role
    return default


def markdown_table() -> str:
    """The permission table as docs/admin.md shows it (``hc user roles`` prints it)."""
    lines = ["| action | what | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
    for action, (_, what) in PERMISSIONS.items():
        marks = " | ".join("yes" if allowed(role, action) else "–" for role in ROLES)
        lines.append(f"| `{action}` | {what} | {marks} |")
    return "\n".join(lines)

"""``hc init``, ``hc serve``, ``hc user`` and ``hc token``: running the service and who may write."""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from hcflask.access import ROLES, SCOPES
from hcflask.cli.common import clear_errors, confirm, get_row, initialised, table, utc, yes_option
from hcflask.engine.tokens import parse_lifetime, revoke
from hcflask.extensions import db
from hcflask.models import ApiToken, User, ValidationError, utcnow


@click.command("init")
@click.option("--demo/--no-demo", default=None,
              help="seed the demo queue and template into a new database (default: yes, but not on PostgreSQL)")
@with_appcontext
@clear_errors
def init_command(demo: bool | None) -> None:
    """Create the instance folder, its config, database and demo (idempotent).

    With ``HC_DATABASE_URL`` set, the new hc.toml points at that database and
    no SQLite file is created.
    """
    from hcflask.instance import ensure
    from hcflask.serve import admin_hint

    seeded = ensure(current_app._get_current_object(), demo=demo)  # type: ignore[attr-defined]
    click.echo(f"instance ready: {current_app.instance_path}" + (" (demo seeded)" if seeded else ""))
    click.echo(f"create the first admin with: {admin_hint(current_app.instance_path)}")


@click.command("serve")
@click.option("--bind", help="HOST:PORT to listen on (default from [server] bind/port, HC_PORT)")
@click.option("--workers", type=click.IntRange(1, 64), help="gunicorn worker processes")
@click.option("--threads", type=click.IntRange(1, 64), help="threads per worker")
@click.option("--no-scheduler", is_flag=True, help="serve the web only (no ticks in this process)")
@click.option("--max-requests", type=click.IntRange(0), default=0,
              help="recycle a worker after this many requests (0: never); the scheduler moves on by itself")
@initialised
def serve_command(bind: str | None, workers: int | None, threads: int | None, no_scheduler: bool,
                  max_requests: int) -> None:
    """Run the service: web, API and (in one worker) the scheduler."""
    from hcflask.serve import bind_problem, serve

    config = current_app.config
    bind = bind or f"{config['SERVER_BIND']}:{config['SERVER_PORT']}"
    problem = bind_problem(bind)
    if problem:
        raise click.ClickException(problem)
    if no_scheduler:
        os.environ["HC_SCHEDULER_ENABLED"] = "false"  # the workers' apps: web only
    else:
        _claim_host()
    serve(
        bind=bind,
        workers=workers or config["SERVER_WORKERS"],
        threads=threads or config["SERVER_THREADS"],
        scheduler=not no_scheduler,
        instance=current_app.instance_path,
        max_requests=max_requests,
    )


def _claim_host() -> None:
    """Refuse to start when the lock cannot work here or another service holds our host_name."""
    from hcflask.engine.service import hosts
    from hcflask.engine.service.lock import InstanceLock, LockUnsupported

    probe = InstanceLock(Path(current_app.instance_path) / "scheduler.lock")
    try:
        if probe.acquire():
            probe.release()
    except LockUnsupported as exc:
        raise click.ClickException(str(exc)) from None
    service = hosts.new_service_id()
    os.environ["HC_SERVICE_ID"] = service  # the workers share it
    current_app.config["SERVICE_ID"] = service
    try:
        hosts.claim()
    except hosts.HostTaken as exc:
        raise click.ClickException(str(exc)) from None


@click.group("user")
def user_group() -> None:
    """Users of the web UI and the API, and their roles (viewer, operator, admin)."""


@user_group.command("add")
@click.argument("username")
@click.option("--password", envvar="HC_PASSWORD", help="default: asked for (or $HC_PASSWORD)")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="viewer, operator or admin (a new user: admin if the instance has no admin yet, else viewer; "
                   "an existing one keeps theirs)")
@initialised
def user_add(username: str, password: str | None, role: str | None) -> None:
    """Create a local user (or reset their password, or change their role)."""
    if not username.isidentifier() and not username.replace("-", "_").replace(".", "_").isidentifier():
        raise ValidationError("username", "letters, digits, '_', '-', '.'")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None and user.source != "local":
        raise ValidationError("username", f"{username} is a {user.source} account: it signs in at the site")
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise ValidationError("password", "at least 8 characters")
    if user is None:
        has_admin = db.session.scalar(select(User.id).where(User.role == "admin", User.disabled.is_(False)))
        user = User(username=username, source="local", role=role or ("viewer" if has_admin else "admin"))
    elif role:
        user.role = role
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"user {username} saved (role {user.role})")


@user_group.command("roles")
def user_roles() -> None:
    """Print the permission table (what each role may do), as docs/admin.md shows it."""
    from hcflask.access import markdown_table

    click.echo(markdown_table())


@user_group.command("disable")
@click.argument("username")
@initialised
def user_disable(username: str) -> None:
    """Stop a user signing in and using tokens (their history and tokens stay; enable brings them back)."""
    from hcflask.engine.actions import set_user_disabled

    set_user_disabled(get_row(User, "username", username, "username"), True)
    click.echo(f"user {username} disabled")


@user_group.command("enable")
@click.argument("username")
@initialised
def user_enable(username: str) -> None:
    """Let a disabled user sign in again."""
    from hcflask.engine.actions import set_user_disabled

    set_user_disabled(get_row(User, "username", username, "username"), False)
    click.echo(f"user {username} enabled")


@click.group("token")
def token_group() -> None:
    """API tokens (for writes through /api/v1)."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="", help="what the token is for")
@click.option("--scope", type=click.Choice(SCOPES), default="admin", show_default=True,
              help="read: reads only; operate: also an operator's writes; admin: every write the user's role allows")
@click.option("--expires", help="lifetime such as 90d, 12h or 30m (default: never)")
@initialised
def token_create(username: str, name: str, scope: str, expires: str | None) -> None:
    """Create an API token for USERNAME; it is shown once."""
    expires_at = utcnow() + parse_lifetime(expires) if expires else None
    _, token = ApiToken.issue(get_row(User, "username", username, "username"), name, scope, expires_at)
    db.session.commit()
    click.echo(token)


@user_group.command("list")
@initialised
def user_list() -> None:
    """List the users: role, where they sign in, disabled or not, their number of API tokens."""
    rows = [(u.username, u.role, u.source, "disabled" if u.disabled else "", utc(u.created_at), len(u.tokens))
            for u in db.session.scalars(select(User).order_by(User.username))]
    table(rows, ("username", "role", "source", "state", "created", "tokens"))


@user_group.command("remove")
@click.argument("username")
@yes_option
@initialised
def user_remove(username: str, yes: bool) -> None:
    """Remove a user and their API tokens (what they did stays in the history)."""
    from hcflask.engine.actions import remove_user

    user = get_row(User, "username", username, "username")
    confirm(yes, f"remove user {username} and their {len(user.tokens)} API token(s)?")
    remove_user(user)
    click.echo(f"user {username} removed")


@token_group.command("list")
@initialised
def token_list() -> None:
    """List API tokens (never the tokens themselves)."""
    rows = [(t.id, t.user.username, t.name, t.scope, t.state, utc(t.created_at), utc(t.expires_at, "never"),
             utc(t.last_used_at)) for t in db.session.scalars(select(ApiToken).order_by(ApiToken.id))]
    table(rows, ("id", "user", "name", "scope", "state", "created", "expires", "last used"))


@token_group.command("revoke")
@click.argument("token_id", type=int)
@initialised
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id (hc token list); it stops working at once."""
    row = get_row(ApiToken, "id", token_id, "token")
    revoke(row)
    db.session.commit()
    click.echo(f"token {token_id} revoked")

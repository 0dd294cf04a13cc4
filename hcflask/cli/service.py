"""``hc init``, ``hc serve``, ``hc user`` and ``hc token``: running the service and who may write."""
from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import select

from hcflask.cli.common import get_row, initialised, table, utc
from hcflask.extensions import db
from hcflask.models import ApiToken, User, ValidationError


@click.command("init")
@initialised
def init_command() -> None:
    """Create the instance folder, its config, database and demo (idempotent)."""
    from hcflask.serve import admin_hint

    click.echo(f"instance ready: {current_app.instance_path}")
    click.echo(f"create the first admin with: {admin_hint(current_app.instance_path)}")


@click.command("serve")
@click.option("--bind", help="HOST:PORT to listen on (default from [server] bind/port, HC_PORT)")
@click.option("--workers", type=click.IntRange(1, 64), help="gunicorn worker processes")
@click.option("--threads", type=click.IntRange(1, 64), help="threads per worker")
@click.option("--no-scheduler", is_flag=True, help="serve the web only (no ticks in this process)")
@initialised
def serve_command(bind: str | None, workers: int | None, threads: int | None, no_scheduler: bool) -> None:
    """Run the service: web, API and (in one worker) the scheduler."""
    from hcflask.serve import bind_problem, serve

    config = current_app.config
    bind = bind or f"{config['SERVER_BIND']}:{config['SERVER_PORT']}"
    problem = bind_problem(bind)
    if problem:
        raise click.ClickException(problem)
    serve(
        bind=bind,
        workers=workers or config["SERVER_WORKERS"],
        threads=threads or config["SERVER_THREADS"],
        scheduler=not no_scheduler,
        instance=current_app.instance_path,
    )


@click.group("user")
def user_group() -> None:
    """Admins of the web UI."""


@user_group.command("add")
@click.argument("username")
@click.option("--password", envvar="HC_PASSWORD", help="default: asked for (or $HC_PASSWORD)")
@initialised
def user_add(username: str, password: str | None) -> None:
    """Create an admin (or reset their password)."""
    if not username.isidentifier() and not username.replace("-", "_").replace(".", "_").isidentifier():
        raise ValidationError("username", "letters, digits, '_', '-', '.'")
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise ValidationError("password", "at least 8 characters")
    user = db.session.scalar(select(User).where(User.username == username)) or User(username=username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"admin {username} saved")


@click.group("token")
def token_group() -> None:
    """API tokens (for writes through /api/v1)."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="", help="what the token is for")
@initialised
def token_create(username: str, name: str) -> None:
    """Create an API token for USERNAME; it is shown once."""
    _, token = ApiToken.issue(get_row(User, "username", username, "username"), name)
    db.session.commit()
    click.echo(token)


@user_group.command("list")
@initialised
def user_list() -> None:
    """List the admins, with their number of API tokens."""
    rows = [(u.username, "yes" if u.is_admin else "no", utc(u.created_at), len(u.tokens))
            for u in db.session.scalars(select(User).order_by(User.username))]
    table(rows, ("username", "admin", "created (UTC)", "tokens"))


@user_group.command("remove")
@click.argument("username")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@initialised
def user_remove(username: str, yes: bool) -> None:
    """Remove an admin and their API tokens (what they did stays in the history)."""
    user = get_row(User, "username", username, "username")
    if not yes:
        click.confirm(f"remove admin {username} and their {len(user.tokens)} API token(s)?", abort=True)
    db.session.delete(user)
    db.session.commit()
    click.echo(f"admin {username} removed")

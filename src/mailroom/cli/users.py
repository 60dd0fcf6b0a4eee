"""``mailroom users create|passwd|list``: the accounts that sign in to the admin pages.

A password is read from a prompt (asked twice, never echoed) or, with ``--password-stdin``,
from the first line of standard input, for scripts. It is never an argument: arguments show
in ``ps`` and in shell history.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from mailroom.access import AdminUser, AdminUserError, create_user, list_users, set_password
from mailroom.access.admin_users import check_password, check_username
from mailroom.cli.base import config_option, existing_outbox, main
from mailroom.cli.render import printable
from mailroom.outbox.presentation import utc_time

_STDIN_HELP = "Read the password from the first line of standard input (for scripts)."


def _username(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_username(value)
    except AdminUserError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2], ctx=ctx, param=param) from None


def _read_password(from_stdin: bool) -> str:
    """The new password, from standard input or asked twice; checked before any database
    work, so a short one is refused at once."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_password(password)
    except AdminUserError as exc:
        reason = str(exc).partition(": ")[2]
        raise click.ClickException(f"the password is refused: {reason}") from None


@main.group("users")
def users_group() -> None:
    """Accounts for the admin pages (/admin/): create, change a password, list."""


@users_group.command("create")
@click.argument("username", callback=_username)
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@config_option
@click.pass_context
def users_create(
    ctx: click.Context, username: str, password_stdin: bool, config_path: str | None
) -> None:
    """Make an admin account named USERNAME (letters, digits and . _ @ + -)."""
    password = _read_password(password_stdin)
    with existing_outbox(ctx, config_path) as engine, engine.begin() as connection:
        user = create_user(connection, username, password)
    click.echo(f"created admin account {user.id} “{printable(user.username)}”")


@users_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@config_option
@click.pass_context
def users_passwd(
    ctx: click.Context, username: str, password_stdin: bool, config_path: str | None
) -> None:
    """Give the admin account USERNAME a new password. Its sessions signed in already end:
    it signs in again with the new one."""
    password = _read_password(password_stdin)
    with existing_outbox(ctx, config_path) as engine, engine.begin() as connection:
        set_password(connection, username, password)
    click.echo(f"changed the password of “{printable(username.strip())}”")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@config_option
@click.pass_context
def users_list(ctx: click.Context, as_json: bool, config_path: str | None) -> None:
    """Every admin account: id, name, when made, last sign-in. Never a password."""
    with existing_outbox(ctx, config_path) as engine, engine.connect() as connection:
        users = list_users(connection)
    if as_json:
        click.echo(json.dumps({"users": [_listed(user) for user in users]}, indent=2))
        return
    if not users:
        click.echo("no admin accounts; make one with: mailroom users create USERNAME")
        return
    header = ("ID", "USERNAME", "CREATED (UTC)", "LAST SIGN-IN (UTC)")
    cells = [
        (str(u.id), printable(u.username), utc_time(u.created_at), utc_time(u.last_login_at))
        for u in users
    ]
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
    for line in (header, *cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _listed(user: AdminUser) -> dict[str, object]:
    """An account as ``list --json`` shows it: its session epoch is the sessions' business."""
    return {k: v for k, v in asdict(user).items() if k != "session_epoch"}

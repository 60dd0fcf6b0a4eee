"""``mailroom serve``: the web service and an embedded delivery worker in one process.

With no settings at all it runs on a SQLite file in the current folder (created with its
tables on first use, as ``mailroom send`` does) and the default transport. It prints where it
listens, where mail goes and where the data lives, so a first start says what it is doing.

On a start with no admin account it makes one (``MAILROOM_ADMIN_USER``, default ``admin``)
with ``MAILROOM_ADMIN_PASSWORD``, or with a generated password printed this once: whoever
started the service is the one who reads its output.

How it stops is :mod:`mailroom.web.server`'s business: gracefully, bounded in every state.
"""

from __future__ import annotations

import socket

import click

from mailroom.access import AdminUserError, ensure_first_admin
from mailroom.cli.base import CommandError, cli_settings, config_option, main
from mailroom.cli.render import database_shown, printable
from mailroom.config import Settings
from mailroom.errors import SettingsError
from mailroom.logs import attach_log_files
from mailroom.outbox.store import Outbox
from mailroom.transports.summary import mode_line
from mailroom.web.paths import ADMIN_PREFIX, API_PREFIX

__all__ = ["serve_command"]


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the URL printed shows it).",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Serve HTTP only; deliver with `mailroom worker` (also the way to run more workers).",
)
@click.option(
    "--root-path",
    default="",
    help="The path prefix a reverse proxy serves Mailroom under, e.g. /mailroom.",
)
@config_option
@click.pass_context
def serve_command(
    ctx: click.Context,
    *,
    host: str,
    port: int,
    no_worker: bool,
    root_path: str,
    config_path: str | None,
) -> None:
    """Run the HTTP API, the public endpoints and a delivery worker in one process."""
    settings = cli_settings(ctx, config_path)
    root_path = _checked_root_path(ctx, root_path)
    attach_log_files(settings)
    generated_password = _prepare_database(settings)
    mode = mode_line(settings)
    listener = _listen(host, port)

    # Imported here: the web stack (FastAPI, uvicorn) is not needed by any other command, and
    # every command starts faster without it.
    from mailroom.web.server import run_service  # noqa: PLC0415

    url = _url(host, listener.getsockname()[1])
    ran = run_service(
        settings,
        listener,
        root_path=root_path,
        embedded_worker=not no_worker,
        on_listening=lambda: _print_start(
            settings,
            url,
            root_path,
            mode,
            worker=not no_worker,
            generated_password=generated_password,
        ),
    )
    if ran.worker_error is not None:
        raise ran.worker_error
    if not ran.started:
        raise CommandError("the server did not start; the log above says why")
    if ran.worker_summary is not None:
        click.echo(ran.worker_summary)
    click.echo("mailroom serve: stopped")


def _prepare_database(settings: Settings) -> str | None:
    """Create the tables in a new SQLite file (as ``mailroom send`` does on first use);
    refuse any other database without the current schema, as ``mailroom worker`` does (a
    MailroomError: one line, exit status 1). Then make the first admin account if there is
    none; the password it generated, if it did."""
    outbox = Outbox(settings)
    try:
        outbox.ensure_schema()
        password = settings.MAILROOM_ADMIN_PASSWORD.get_secret_value() or None
        try:
            return ensure_first_admin(outbox.engine, settings.MAILROOM_ADMIN_USER, password)
        except AdminUserError as exc:
            setting = (
                "MAILROOM_ADMIN_USER" if exc.field == "username" else "MAILROOM_ADMIN_PASSWORD"
            )
            reason = str(exc).partition(": ")[2]
            raise SettingsError(
                setting, f"the first admin account cannot be made: {reason}"
            ) from None
    finally:
        outbox.dispose()


def _checked_root_path(ctx: click.Context, root_path: str) -> str:
    if root_path in ("", "/"):
        return ""
    if not root_path.startswith("/") or any(c in root_path for c in "?#\\ "):
        param = next(p for p in ctx.command.params if p.name == "root_path")
        raise click.BadParameter(
            "must be a URL path starting with /, such as /mailroom", ctx=ctx, param=param
        )
    return root_path.rstrip("/")


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that ``--port 0`` shows the port it got."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bare, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CommandError(
            f"cannot listen on {printable(host)} port {port}: {reason}; choose another "
            "--port (0 picks a free one) or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    return f"http://{shown}:{port}"


def _print_start(
    settings: Settings,
    url: str,
    root_path: str,
    mode: str,
    *,
    worker: bool,
    generated_password: str | None,
) -> None:
    behind = f" (behind a proxy at the path {root_path})" if root_path else ""
    click.echo(printable(f"mailroom serve: listening on {url}{behind}"))
    click.echo(printable(f"  mode: {mode}"))
    click.echo(f"  data: {database_shown(settings.DATABASE_URL)}")
    if worker:
        click.echo(
            f"  worker: embedded, concurrency {settings.WORKER_CONCURRENCY} "
            "(run `mailroom worker` for more)"
        )
    else:
        click.echo("  worker: none (--no-worker); run `mailroom worker` to deliver")
    click.echo(f"  API: {url}{API_PREFIX}/docs; health {url}/healthz, metrics {url}/metrics")
    click.echo(f"  admin: {url}{root_path}{ADMIN_PREFIX}/")
    if generated_password is not None:
        user = printable(settings.MAILROOM_ADMIN_USER)
        click.echo(
            f"  admin account “{user}” created with the password {generated_password}\n"
            "    (shown this once: store it, or change it with "
            f"`mailroom users passwd {user}`)"
        )
    if not settings.SECRET_KEY.get_secret_value():
        click.echo(
            "  admin sessions: signed with a key made for this process, as SECRET_KEY is "
            "unset; a restart signs everyone out"
        )

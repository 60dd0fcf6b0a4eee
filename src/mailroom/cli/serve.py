"""``mailroom serve``: the web service and an embedded delivery worker in one process.

With no settings at all it runs on a SQLite file in the current folder (created with its
tables on first use, as ``mailroom send`` does) and the default transport. It prints where it
listens, where mail goes and where the data lives, so a first start says what it is doing.

Stopping (SIGTERM or SIGINT): uvicorn stops accepting, finishes the requests in progress (for
at most :data:`HTTP_GRACE` seconds), then the lifespan stops the worker gracefully (see
:mod:`mailroom.web.embedded_worker`) and writes the last tracking hits. A second signal
(either one) ends both graces at once, the app's shutdown still running. Every step is
bounded; a watchdog started by the signal ends the process if the whole stop ever takes longer
than all the bounds together.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import click
import uvicorn
from fastapi import FastAPI
from starlette.types import Lifespan
from uvicorn.lifespan.on import LifespanOn

from mailroom.cli.base import CommandError, cli_settings, config_option, main
from mailroom.cli.render import database_shown, printable
from mailroom.config import Settings, TransportName
from mailroom.delivery.worker import Worker
from mailroom.logs import attach_log_files
from mailroom.outbox.store import Outbox
from mailroom.transports import transport_from_settings
from mailroom.web.app import API_PREFIX, create_app
from mailroom.web.embedded_worker import EmbeddedWorker

__all__ = ["HTTP_GRACE", "mode_line", "serve_command"]

logger = logging.getLogger(__name__)

HTTP_GRACE = 10
"""Seconds the requests in progress get to finish once a stop is asked for."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
    _prepare_schema(settings)
    mode = mode_line(settings)
    listener = _listen(host, port)

    server: _Server | None = None

    def worker_failed(_error: BaseException) -> None:
        if server is not None:
            server.stop()

    embedded = None if no_worker else EmbeddedWorker(Worker(settings), on_failure=worker_failed)
    app = create_app(settings, lifespan=_lifespan(embedded))
    config = uvicorn.Config(
        app,
        lifespan="on",
        loop=settings.WORKER_EVENT_LOOP,  # auto: uvloop where installed
        http="auto",  # httptools where installed
        log_config=None,  # mailroom's own logging (-v shows uvicorn's INFO lines)
        server_header=False,
        root_path=root_path,
        # Forwarded headers are believed only from the proxies listed; none by default.
        proxy_headers=bool(settings.FORWARDED_ALLOW_IPS),
        forwarded_allow_ips=list(settings.FORWARDED_ALLOW_IPS),
        timeout_graceful_shutdown=HTTP_GRACE,
    )
    server = _Server(config, hard_cap=_hard_cap(settings), embedded=embedded)
    url = _url(host, listener.getsockname()[1])
    _print_start(settings, url, root_path, mode, embedded is not None)
    server.run(sockets=[listener])
    if embedded is not None and embedded.error is not None:
        raise embedded.error
    if not server.started:
        raise CommandError("the server did not start; the log above says why")
    if embedded is not None and embedded.stats is not None:
        stats = embedded.stats
        click.echo(
            f"worker {embedded.worker.name}: sent {stats.sent}, deferred {stats.deferred}, "
            f"failed {stats.failed}, paused {stats.paused}, released {stats.released}, "
            f"suppressed {stats.suppressed}"
        )
    click.echo("mailroom serve: stopped")


def mode_line(settings: Settings) -> str:
    """Where mail goes, in one line for people: never a secret."""
    if settings.MAILROOM_TRANSPORT is TransportName.CAPTURE:
        return "capturing: nothing leaves this machine (see /api/v1/captured)"
    if settings.MAILROOM_TRANSPORT is TransportName.SMTP:
        return f"relaying through {settings.EMAIL_HOST}:{settings.port}"
    try:
        return transport_from_settings(settings).describe()
    except Exception as exc:  # the worker reports a transport it cannot set up
        return f"{settings.MAILROOM_TRANSPORT} (cannot be set up: {exc})"


def _prepare_schema(settings: Settings) -> None:
    """Create the tables in a new SQLite file (as ``mailroom send`` does on first use);
    refuse any other database without the current schema, as ``mailroom worker`` does (a
    MailroomError: one line, exit status 1)."""
    outbox = Outbox(settings)
    try:
        outbox.ensure_schema()
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


def _print_start(settings: Settings, url: str, root_path: str, mode: str, worker: bool) -> None:
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


def _lifespan(embedded: EmbeddedWorker | None) -> Lifespan[FastAPI]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if embedded is not None:
            embedded.start()
        try:
            yield
        finally:
            if embedded is not None:
                await embedded.stop()

    return lifespan


def _hard_cap(settings: Settings) -> float:
    """Seconds after a stop signal past which the process ends whatever it is waiting for:
    every bounded step of the stop, with a margin."""
    return HTTP_GRACE + EmbeddedWorker.longest_stop(settings) + 15.0


class _Server(uvicorn.Server):
    """uvicorn's server, with four changes for a service: a stop signal ends the process with
    exit status 0 once the stop is done (uvicorn raises the signal again, which would end it
    by the signal); a second one (SIGTERM or SIGINT alike) ends the graces at once, the
    requests' and the worker's, as for ``mailroom worker``; the app's shutdown (the worker's
    stop, the tracking hits' last write) runs even then, where uvicorn skips it; and a
    watchdog bounds the whole stop."""

    def __init__(
        self, config: uvicorn.Config, *, hard_cap: float, embedded: EmbeddedWorker | None
    ) -> None:
        super().__init__(config)
        self._hard_cap = hard_cap
        self.embedded = embedded
        self._watchdog: threading.Timer | None = None

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in _STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def handle_exit(self, sig: int, frame: object) -> None:
        if self.should_exit:
            logger.info("signal %s again: ending the graces", sig)
            self.force_exit = True  # uvicorn stops waiting for the requests in progress
            if self.embedded is not None:
                self.embedded.hurry()
        else:
            logger.info("signal %s: stopping", sig)
        self.stop()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        lifespan = self.lifespan
        if (
            self.force_exit
            and isinstance(lifespan, LifespanOn)
            and not lifespan.shutdown_event.is_set()
        ):
            # uvicorn skips the app's shutdown once hurried; every step of it is bounded.
            await lifespan.shutdown()

    def stop(self) -> None:
        """Stop serving (as a signal does), and start the watchdog."""
        self.should_exit = True
        if self._watchdog is None:
            self._watchdog = threading.Timer(self._hard_cap, self._give_up)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _give_up(self) -> None:
        sys.stderr.write(
            f"mailroom: error: serve did not stop within {self._hard_cap:.0f} s; exiting now "
            "(messages being sent keep their lease and are sent again when it runs out)\n"
        )
        sys.stderr.flush()
        os._exit(1)

"""Running the submission port: the listening socket, one aiosmtpd protocol per connection
(as many at once as ``SMTPD_MAX_CONNECTIONS`` and ``SMTPD_MAX_CONNECTIONS_PER_CLIENT``
allow), and a stop in bounded time.

SIGTERM (or SIGINT) stops it so: the socket stops accepting; new transactions and DATA that
finishes from then on are answered ``421`` (nothing acknowledged that is not committed);
commits under way are waited for, up to ``SMTPD_SHUTDOWN_GRACE`` seconds, and answered;
then every connection is told ``421`` and closed (a client in the middle of sending DATA is
not acknowledged, so it keeps the message and retries), and the writer thread is joined.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.delivery.loop import run
from mailroom.domains import machine_fqdn_once
from mailroom.integrations.smtpd.connections import ConnectionLimits
from mailroom.integrations.smtpd.handler import SubmissionHandler, SubmissionPolicy
from mailroom.integrations.smtpd.peers import TrustedNetworks
from mailroom.integrations.smtpd.protocol import SubmissionSMTP
from mailroom.integrations.smtpd.rate_limit import RateLimiter
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.raw_submissions import SubmissionWriter
from mailroom.outbox.wal_checkpoints import WalCheckpointer

__all__ = [
    "IDLE_TIMEOUT",
    "ServeResult",
    "connection_limits",
    "max_message_size",
    "policy_of",
    "serve",
    "tls_context",
]

logger = logging.getLogger(__name__)

IDLE_TIMEOUT = 300.0
"""Seconds a connection may wait between commands (RFC 5321 §4.5.3.2.7: at least five
minutes), then it is closed."""
SWITCH_INTERVAL = 0.001
"""Seconds a thread runs before another that waits for the GIL gets it."""
_WRITER_JOIN = 10.0  # seconds the writer thread gets to finish after the connections close


def max_message_size(settings: Settings) -> int:
    """``SMTPD_MAX_MESSAGE_SIZE``, or the outbox's own ``EMAIL_MAX_MESSAGE_SIZE``."""
    return settings.SMTPD_MAX_MESSAGE_SIZE or settings.EMAIL_MAX_MESSAGE_SIZE


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context for STARTTLS, from ``SMTPD_TLS_CERTFILE`` (and
    ``SMTPD_TLS_KEYFILE``, unless the key is in the certificate's file); ``None`` without."""
    if settings.SMTPD_TLS_CERTFILE is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.SMTPD_TLS_CERTFILE, settings.SMTPD_TLS_KEYFILE)
    return context


def policy_of(settings: Settings) -> SubmissionPolicy:
    rate = settings.SMTPD_RATE_LIMIT
    return SubmissionPolicy(
        stream=settings.SMTPD_STREAM,
        max_message_size=max_message_size(settings),
        max_recipients=settings.SMTPD_MAX_RECIPIENTS,
        trusted=TrustedNetworks(settings.SMTPD_TRUSTED_NETWORKS),
        rate_limiter=RateLimiter(rate) if rate else None,
        tls=settings.SMTPD_TLS_CERTFILE is not None,
    )


def connection_limits(settings: Settings) -> ConnectionLimits[SubmissionSMTP]:
    """The connections the port holds: ``SMTPD_MAX_CONNECTIONS`` in all,
    ``SMTPD_MAX_CONNECTIONS_PER_CLIENT`` from one address outside the trusted networks."""
    return ConnectionLimits(
        settings.SMTPD_MAX_CONNECTIONS,
        settings.SMTPD_MAX_CONNECTIONS_PER_CLIENT,
        exempt=TrustedNetworks(settings.SMTPD_TRUSTED_NETWORKS).contains,
    )


@dataclass(frozen=True, slots=True)
class ServeResult:
    accepted: int
    """Connections accepted (those then refused over a limit included)."""
    unanswered: int
    """Commits still under way when the grace ran out (their clients got no answer)."""
    refused: int = 0
    """Connections refused over ``SMTPD_MAX_CONNECTIONS`` or ``..._PER_CLIENT``."""


async def _serve(
    settings: Settings,
    engine: Engine,
    listener: socket.socket,
    on_listening: Callable[[], None],
    stop: asyncio.Event | None,
) -> ServeResult:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The writer's own engine, as the service's: one connection, and the log checkpointed by
    # a thread of its own rather than by a commit that clients wait for.
    writer_engine = create_outbox_engine(
        settings.DATABASE_URL, single_writer=True, autocheckpoint=False
    )
    checkpointer = WalCheckpointer(writer_engine)
    checkpointer.start()
    writer = SubmissionWriter(writer_engine, loop)
    handler = SubmissionHandler(policy_of(settings), engine, writer)
    context = tls_context(settings)
    hostname = settings.EMAIL_LOCAL_HOSTNAME or machine_fqdn_once() or socket.gethostname()
    connections = connection_limits(settings)
    accepted = 0

    def protocol() -> SubmissionSMTP:
        nonlocal accepted
        accepted += 1
        return SubmissionSMTP(
            handler,
            connections,
            hostname=hostname,
            ident="Mailroom ESMTP submission",
            data_size_limit=max_message_size(settings),
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=context,
            require_starttls=False,
            auth_required=False,  # the handler decides, trusted networks being exempt
            auth_require_tls=context is not None,
            timeout=IDLE_TIMEOUT,
            loop=loop,
        )

    server = await loop.create_server(protocol, sock=listener)
    # What is alive now (modules, the engine, aiosmtpd) lives as long as the process: out of
    # the collector's full passes, which each message's garbage sets off (as `mailroom serve`).
    gc.freeze()
    try:
        on_listening()
        await stop.wait()
    finally:
        handler.draining = True
        server.close()
        deadline = time.monotonic() + settings.SMTPD_SHUTDOWN_GRACE
        while handler.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        unanswered = handler.in_flight
        for connection in connections:
            connection.say_goodbye()
        await asyncio.sleep(0)  # let the transports close
        if not await asyncio.to_thread(writer.close, _WRITER_JOIN):
            logger.warning("the submission writer did not stop within %s s", _WRITER_JOIN)
        await asyncio.to_thread(checkpointer.close)
        writer_engine.dispose()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return ServeResult(accepted, unanswered, connections.refused)


def serve(
    settings: Settings,
    engine: Engine,
    listener: socket.socket,
    *,
    on_listening: Callable[[], None] = lambda: None,
) -> ServeResult:
    """Serve on ``listener`` (bound, not yet listening) until SIGTERM or SIGINT.

    ``engine`` (the outbox's, schema checked) is where API keys are read; messages are
    committed through an engine of the writer's own on the same ``DATABASE_URL``."""
    # The writer thread lets go of the GIL for each statement and the sync to disk, then
    # waits to win it back from the event loop: by default up to 5 ms a time, with SQLite's
    # write lock held and every client of the group waiting. As in `mailroom serve`.
    sys.setswitchinterval(SWITCH_INTERVAL)
    return run(_serve(settings, engine, listener, on_listening, None), settings.WORKER_EVENT_LOOP)

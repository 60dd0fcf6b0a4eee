"""A real aiosmtpd server on loopback for tests, scripted per test.

The server runs in its own thread and event loop (aiosmtpd's Controller) on port 0, so tests
talk to it over real sockets exactly as to a relay. Its behaviour is scripted per test through
:class:`ScriptedHandler`: replies per command (or per transaction's content), per-recipient
refusals, delays, and closing
the connection at chosen points (after the final dot, in the middle of DATA, or without
replying at the greeting, MAIL, RCPT or DATA).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TEST_USER = "mailer@example.com"
TEST_PASSWORD = "Pa55-w0rd-that-must-never-show"


@dataclass
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]


@dataclass
class ScriptedHandler:
    """aiosmtpd handler whose replies a test sets before sending."""

    replies: dict[str, str] = field(default_factory=dict)
    """A reply to give instead of accepting: keys MAIL, RCPT, DATA."""
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    """A reply for one recipient address."""
    sender_replies: dict[str, str] = field(default_factory=dict)
    """A reply for one MAIL FROM address."""
    delays: dict[str, float] = field(default_factory=dict)
    """Seconds to wait before answering: keys MAIL, RCPT, DATA."""
    content_delays: dict[int, float] = field(default_factory=dict)
    """Seconds to wait before answering the content of the n-th transaction (1: the first),
    before anything else scripted for DATA."""
    content_replies: dict[int, str] = field(default_factory=dict)
    """A reply to give instead of accepting the content of the n-th transaction."""
    contents: int = 0
    """How many transactions have sent their content (reached the final dot)."""
    close_after_dot: bool = False
    """Close the connection after the final dot without replying."""
    close_at: set[str] = field(default_factory=set)
    """Close the connection without replying when one of these comes: ``GREETING`` (a new
    connection, before the 220), ``MAIL``, ``RCPT``, ``DATA`` (the command, before the 354:
    no content is ever sent). Set it after the server has started (the
    server's own readiness probe is a connection too)."""
    close_limit: int | None = None
    """Close at ``close_at`` points at most this many times (``None``: every time), for a relay
    that drops a connection and then recovers."""
    closes: int = 0
    """How many connections were closed at ``close_at`` points."""
    pipelining: bool = False
    """Offer PIPELINING (RFC 2920) in the EHLO reply."""
    behind_mail: list[bytes] = field(default_factory=list)
    """For each MAIL command, the bytes that had already arrived behind it: with pipelining,
    the RCPT and DATA commands written in the same round trip."""
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    auth_mechanisms_used: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def _pause(self, command: str) -> None:
        if command in self.delays:
            await asyncio.sleep(self.delays[command])

    def should_close(self, point: str) -> bool:
        """Whether to drop the connection at ``point`` (see ``close_at``); counts the drop."""
        with self.lock:
            if point not in self.close_at:
                return False
            if self.close_limit is not None and self.closes >= self.close_limit:
                return False
            self.closes += 1
            return True

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook names
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # aiosmtpd reads commands through an asyncio.StreamReader: what it holds now came in
        # with (or right after) this MAIL and has not been answered yet.
        with self.lock:
            self.behind_mail.append(bytes(getattr(server._reader, "_buffer", b"")))
        await self._pause("MAIL")
        if self.should_close("MAIL"):
            return _drop(server)
        reply = self.sender_replies.get(address) or self.replies.get("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._pause("RCPT")
        if self.should_close("RCPT"):
            return _drop(server)
        reply = self.rcpt_replies.get(address) or self.replies.get("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.lock:
            self.contents += 1
            nth = self.contents
        if nth in self.content_delays:
            await asyncio.sleep(self.content_delays[nth])
        if nth in self.content_replies:
            return self.content_replies[nth]
        await self._pause("DATA")
        if self.close_after_dot:
            assert server.transport is not None
            server.transport.close()
            return "250 never sent"
        if "DATA" in self.replies:
            return self.replies["DATA"]
        content = envelope.original_content or b""
        with self.lock:
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    content,
                    list(envelope.mail_options),
                )
            )
        return "250 2.0.0 OK queued"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.auth_mechanisms_used.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == TEST_USER
            and auth_data.password.decode() == TEST_PASSWORD
        )
        return AuthResult(success=ok, handled=False)


def _drop(server: SMTP) -> str:
    """Close the connection; the reply returned is never sent (the transport is closed)."""
    assert server.transport is not None
    server.transport.close()
    return "421 4.4.2 never sent: the connection is closed"


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP with connection counting, a 'close in the middle of DATA' switch and
    a 'close before the greeting' one (``close_at`` GREETING)."""

    close_in_data = False

    def __init__(self, handler: ScriptedHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._scripted = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with self._scripted.lock:
            self._scripted.connections += 1
        super().connection_made(transport)

    async def _handle_client(self) -> None:
        # Before the 220 greeting: a relay that accepts the TCP connection and hangs up.
        if self._scripted.should_close("GREETING"):
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        if self._scripted.should_close("DATA"):
            assert self.transport is not None
            self.transport.close()
            return
        if self.close_in_data:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            assert self.transport is not None
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class SMTPTestServer(Controller):
    """A Controller that binds port 0 and learns its port before self-testing."""

    def __init__(
        self,
        handler: ScriptedHandler,
        *,
        implicit_tls: ssl.SSLContext | None = None,
        close_in_data: bool = False,
        **smtp_kwargs: Any,
    ) -> None:
        super().__init__(
            handler, hostname="127.0.0.1", port=0, ssl_context=implicit_tls, **smtp_kwargs
        )
        self.scripted = handler
        self.close_in_data = close_in_data

    def factory(self) -> SMTP:
        server = _ScriptedSMTP(self.scripted, **self.SMTP_kwargs)
        server.close_in_data = self.close_in_data
        return server

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]

    def start(self) -> None:
        super().start()
        # The Controller's own readiness probe was one connection; tests count theirs.
        with self.scripted.lock:
            self.scripted.connections = 0
            self.scripted.closes = 0


ServerFactory = Callable[..., SMTPTestServer]

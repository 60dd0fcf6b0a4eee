"""aiosmtpd's protocol for the submission port: counted in and out of the server's
connections (:mod:`.connections`: a connection over a limit is told ``421`` and closed, and a
stop closes those still open), told to say goodbye, its MAIL and RCPT parameters read as
RFC 5321 and RFC 4954 have them, and two of its hot paths made cheaper.

aiosmtpd spends most of a small message's time in two places that do far more work than a
submission port needs: the address of every MAIL FROM and RCPT TO goes through the email
package's header parser (about 50 µs each, and a class defined per call), and DATA is read one
line at a time (a coroutine call, a log call and a few list operations per line: 60 of each for
a 4 KB message). Here a plain ``<local@domain>`` takes a regular expression, and DATA is read
in runs up to each ``.CRLF``; what each accepts and refuses is aiosmtpd's (the same replies,
the same limits), and anything unusual takes aiosmtpd's own path. Around every command,
two smaller costs: the idle timeout moves a deadline rather than replacing a timer, and a
reply waits for the transport only when there is something to wait for.

The parameters of MAIL and RCPT (RFC 5321 §4.1.1.11, RFC 1869): aiosmtpd takes ``BODY=7BIT``
and ``BODY=8BITMIME`` (8BITMIME, RFC 6152), ``SMTPUTF8`` (RFC 6531) and ``SIZE`` (RFC 1870),
and answers ``555`` to the others. Three things are mended here: a keyword with a hyphen
(``X-FOO=1``, valid in RFC 5321 §4.1.2) was a ``501`` syntax error rather than ``555``;
``AUTH=`` in MAIL was refused, where RFC 4954 §5 has every server that offers AUTH accept it
(taken, and not believed: the API key says who submits); and aiosmtpd keeps the limit of a
command line's length on its class, so one connection's EHLO raised it for all of them and
each new connection set it back for the ones already open.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
from collections.abc import Sequence
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, Session, syntax

from mailroom.integrations.smtpd.connections import ConnectionLimits, Limit
from mailroom.integrations.smtpd.handler import SHUTTING_DOWN
from mailroom.integrations.smtpd.peers import peer_host

__all__ = ["SubmissionSMTP"]

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5321 §4.1.2 Atom, ASCII
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_PATH = re.compile(
    rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*)>[ \t]*(.*)", re.ASCII | re.DOTALL
)
"""``<dot-atom@domain>`` and what follows it (the parameters)."""
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*", re.ASCII)
"""RFC 5321 §4.1.2 esmtp-keyword."""
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+", re.ASCII)
"""RFC 3461 §4 xtext, the value of AUTH= (upper case: aiosmtpd upper-cases the parameters)."""
_AUTH_PARAMETER = 500
"""Octets the AUTH= parameter adds to the longest MAIL line (RFC 4954 §3). aiosmtpd adds
SIZE's and SMTPUTF8's at EHLO; its reader's limit of 1001 octets a line bounds them all."""
_log = logging.getLogger("mail.log")  # aiosmtpd's
_debugging = functools.partial(_log.isEnabledFor, logging.DEBUG)
_DOT_CRLF = b".\r\n"
_LONGEST_LINE = SMTP.line_length_limit - 2  # aiosmtpd's 1001 octets, less the CRLF


class _Session(Session):
    """aiosmtpd's session without its deprecated ``login_data``: aiosmtpd 1.4 sets it after
    every successful AUTH, and each time logs a deprecation warning we cannot act on."""

    @property
    def login_data(self) -> Any:
        return None

    @login_data.setter
    def login_data(self, value: Any) -> None:
        del value  # the API key is in auth_data


class SubmissionSMTP(SMTP):
    """One connection to the submission port."""

    def __init__(
        self, handler: object, connections: ConnectionLimits[SubmissionSMTP], **options: Any
    ) -> None:
        self._idle_deadline = 0.0
        self._idle_armed = False
        self._connections = connections
        self._over: Limit | None = None
        self._admitted = False
        super().__init__(handler, **options)
        # aiosmtpd's are on its class, shared by every connection (and cleared by each new
        # one, as __init__ just did): each its own here.
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit,
            {"MAIL": SMTP.command_size_limit + _AUTH_PARAMETER},
        )

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted and self._over is None:  # STARTTLS calls it again (with TLS)
            over = self._connections.admit(self, peer_host(transport.get_extra_info("peername")))
            self._admitted, self._over = over is None, over
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.release(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        """aiosmtpd's session, or for a connection over a limit its refusal in place of the
        greeting (RFC 5321 §3.1), then the close."""
        if self._over is not None:
            self.say_goodbye(f"421 4.7.0 {self.hostname} Too many connections, try again later")
            return
        await super()._handle_client()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd's idle timeout, moved without a new timer for every command: aiosmtpd
        cancels its timer and schedules another before each one (four a message); here the
        deadline moves, and a timer that fires before it is set again for what is left."""
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        handle = self._timeout_handle
        if handle is not None and self._idle_armed and handle.when() <= deadline:
            return  # it fires first, and then waits on until the new deadline
        if handle is not None:
            handle.cancel()
        self._idle_armed = True
        self._timeout_handle = self.loop.call_at(deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
            return
        self._idle_armed = False
        self._timeout_cb()  # type: ignore[no-untyped-call]

    def say_goodbye(self, reply: str = SHUTTING_DOWN) -> None:
        """``reply`` (RFC 5321 §3.8: the server is closing), then close, without waiting."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(Exception):  # a peer gone already: nothing to tell
            transport.write(reply.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
        transport.close()

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's reply, waiting for the transport (``drain``) only when there is
        something to wait for: a full write buffer, a closing or lost connection. Four replies
        a message, and most of the time there is nothing."""
        if isinstance(status, str):
            response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        else:
            response = status
        writer = self._writer
        writer.write(response + b"\r\n")
        if _debugging():
            _log.debug("%r << %r", self.session.peer if self.session else None, response)
        if (
            self._paused  # type: ignore[attr-defined]
            or self._connection_lost  # type: ignore[attr-defined]
            or writer.transport.is_closing()
            or self._reader.exception() is not None
        ):
            await writer.drain()

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        """The parameters of MAIL or RCPT by keyword, or ``None`` (a ``501``) when one is not
        ``keyword[=value]`` (RFC 5321 §4.1.2). aiosmtpd answers ``555`` to those left after it
        takes its own (BODY, SMTPUTF8, SIZE); a syntactically valid ``AUTH=`` of MAIL is taken
        here and not believed (RFC 4954 §5: then as if it were ``AUTH=<>``)."""
        result: dict[str, str | bool] = {}
        for param in params:
            keyword, equals, value = param.partition("=")
            if not _KEYWORD.fullmatch(keyword) or (equals and not value):
                return None
            result[keyword] = value if equals else True
        # aiosmtpd reads MAIL's parameters before the envelope has a sender (a nested MAIL
        # is refused first) and RCPT's after (RCPT needs MAIL first).
        if "AUTH" in result and self.envelope is not None and not self.envelope.mail_from:
            auth = result.pop("AUTH")
            if not isinstance(auth, str) or _XTEXT.fullmatch(auth) is None:
                return None
        return result

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parsing, with the fast path for ``<dot-atom@domain>``, which
        means the same to both parsers."""
        plain = _PLAIN_PATH.match(arg)
        if plain is not None:
            return plain.group(1), plain.group(2)
        return super()._getaddr(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command method
        """aiosmtpd's DATA (the same checks and replies, in the same order), reading the
        content in runs up to each ``.CRLF`` rather than line by line."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None  # noqa: S101 - aiosmtpd's own invariant
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        stuffed, problem = await self._read_content()
        if problem is not None:
            await self.push(problem)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        # RFC 5321 §4.5.2: a line's leading dot was doubled by the client; take one off.
        content = stuffed[1:] if stuffed.startswith(b".") else stuffed
        content = content.replace(b"\r\n.", b"\r\n")
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_content(self) -> tuple[bytes, str | None]:
        """The content up to the lone ``.`` line (dot-stuffed still), or the reply that
        refuses it once it is all read (RFC 5321 §4.2.5: the refusal waits for the end):
        aiosmtpd's 552 over ``data_size_limit``, its 500 for a line over 1001 octets.

        Only a ``.`` after a CRLF (or at the very start) ends it, as in aiosmtpd: a bare LF
        before the dot does not (the "SMTP smuggling" of CVE-2023-51764)."""
        reader = self._reader
        limit = self.data_size_limit or 0
        runs: list[bytes] = []
        size = 0
        before = b"\r\n"  # the 354 left the client at the start of a line
        while True:
            try:
                run = await reader.readuntil(_DOT_CRLF)
                complete = True
            except asyncio.LimitOverrunError as overrun:
                # No ".CRLF" within the reader's limit (a line's length): take what is there.
                run = await reader.read(overrun.consumed)
                complete = False
            size += len(run)
            if complete:
                ahead = before + run if len(run) < 5 else run
                if ahead[-5:-3] == b"\r\n":
                    runs.append(run[:-3])
                    break
            before = run[-2:] if len(run) >= 2 else (before + run)[-2:]
            if not limit or size <= limit:
                runs.append(run)
        if limit and size - 3 > limit:
            return b"", "552 Error: Too much mail data"
        stuffed = b"".join(runs)
        if stuffed and max(map(len, stuffed.split(b"\r\n"))) > _LONGEST_LINE:
            return b"", "500 Line too long (see RFC5321 4.5.3.1.6)"
        return stuffed, None

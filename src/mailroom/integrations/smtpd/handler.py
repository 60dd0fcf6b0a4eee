"""The aiosmtpd handler of the submission port: who may submit, what is taken, and the
commit before the ``250``.

aiosmtpd speaks the protocol (EHLO, STARTTLS, AUTH's exchanges, dot-stuffing, SIZE, line
limits); this handler decides:

- AUTH PLAIN and LOGIN: the password is a Mailroom API key; the user name is not read (any
  will do: the key alone names its owner). A wrong, revoked or malformed key is
  ``535 5.7.8``. Checked in a thread, so the database never stalls the event loop.
- MAIL FROM: without AUTH only from ``SMTPD_TRUSTED_NETWORKS`` (else ``530 5.7.0``); then the
  rate limit (``451 4.7.1``, transient) per API key, or per address for trusted clients.
- MAIL FROM and RCPT TO: a non-ASCII address only after ``MAIL ... SMTPUTF8`` (RFC 6531
  §3.4; else ``553 5.6.7``).
- RCPT TO: at most ``SMTPD_MAX_RECIPIENTS`` (then ``452 4.5.3``, so the client sends the rest
  in another transaction, RFC 5321 §4.5.3.1.10).
- DATA: the checks of :mod:`.message_checks`, a ``Received`` field on top (:mod:`.trace`),
  then the commit to the outbox (through the
  :class:`~mailroom.outbox.raw_submissions.SubmissionWriter` thread, in groups), and only
  after it the ``250``: a crash after the ``250`` loses nothing. A commit that fails or does
  not end in time is ``451 4.3.0``: the client keeps the message and retries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from sqlalchemy import Engine

from mailroom.access.apikeys import ApiKey, authenticate, needs_touch, touch_api_key
from mailroom.errors import MessageError
from mailroom.integrations.smtpd.message_checks import Refused, check_message, date_now
from mailroom.integrations.smtpd.peers import TrustedNetworks, is_loopback, peer_host
from mailroom.integrations.smtpd.rate_limit import RateLimiter
from mailroom.integrations.smtpd.trace import queue_id, received_field
from mailroom.message import Address
from mailroom.outbox.raw_submissions import RawSubmission, SubmissionWriter
from mailroom.outbox.vocabulary import ApiKeyScope

__all__ = ["API_KEY_METADATA", "SubmissionHandler", "SubmissionPolicy"]

logger = logging.getLogger(__name__)

API_KEY_METADATA = "mailroom.api_key"
"""The metadata key that names the API key a message came with: the API's own
(``mailroom.web.api.message_models``), so a ``send`` key reads back over the API what it
submitted here."""

MAY_SUBMIT = frozenset({ApiKeyScope.SEND, ApiKeyScope.ADMIN})
"""Sending needs the ``send`` scope, which ``admin`` includes."""

_KEY_MAX = 200  # far above any key Mailroom makes; a longer password is not looked up
_COMMIT_TIMEOUT = 60.0  # seconds: then 451, and the client retries

INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
NOT_STORED = "451 4.3.0 The message could not be stored; try again later"
UNDECLARED_UTF8 = "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
"""RFC 6531 §3.4: a non-ASCII address only in a transaction whose MAIL said SMTPUTF8; the
code is §3.5's, the words Postfix's."""


@dataclass(frozen=True, slots=True)
class SubmissionPolicy:
    """What the port allows, from the ``SMTPD_*`` settings."""

    stream: str
    max_message_size: int
    max_recipients: int
    trusted: TrustedNetworks
    rate_limiter: RateLimiter | None
    tls: bool
    """A certificate is set: AUTH only after STARTTLS (aiosmtpd enforces it). Without one,
    AUTH is offered only to loopback peers, whose traffic does not leave the machine."""


class SubmissionHandler:
    """aiosmtpd's handler: one for the server, shared by every connection."""

    def __init__(
        self,
        policy: SubmissionPolicy,
        engine: Engine,
        writer: SubmissionWriter,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.engine = engine
        self.writer = writer
        self.clock = clock
        self.draining = False
        """Set at shutdown: new transactions and finished DATA are refused with 421."""
        self.in_flight = 0
        """Commits under way, each with a client waiting for its answer."""

    # -- EHLO and AUTH ------------------------------------------------------------------

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # this hook's job once it is defined
        if not self._may_auth(server, session):
            responses = [line for line in responses if not line[4:].startswith("AUTH")]
        return responses

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """RFC 4616: ``authzid NUL authcid NUL password``; the password is the key."""
        if not self._may_auth(server, server.session):
            await server.push(ENCRYPTION_REQUIRED)
            return AuthResult(success=False, handled=True)
        blob: bytes | None
        if len(args) == 1:
            answer = await server.challenge_auth("")
            blob = answer if isinstance(answer, bytes) else None
            if blob is None:  # aiosmtpd answered it (aborted, or not base64)
                return AuthResult(success=False, handled=True)
        else:
            blob = _b64(args[1])
            if blob is None:
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split the PLAIN response (RFC 4616)")
            return AuthResult(success=False, handled=True)
        return await self._authenticate(parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """The user name (ignored), then the password (the key), each base64."""
        if not self._may_auth(server, server.session):
            await server.push(ENCRYPTION_REQUIRED)
            return AuthResult(success=False, handled=True)
        if len(args) == 1:
            login = await server.challenge_auth(SMTP.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return AuthResult(success=False, handled=True)
        elif _b64(args[1]) is None:
            await server.push("501 5.5.2 Cannot decode base64")
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(SMTP.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):  # aiosmtpd answered it (aborted, or not base64)
            return AuthResult(success=False, handled=True)
        return await self._authenticate(password)

    def _may_auth(self, server: SMTP, session: Session | None) -> bool:
        if self.policy.tls:
            return True  # aiosmtpd refuses AUTH before STARTTLS itself (auth_require_tls)
        return session is not None and is_loopback(peer_host(session.peer))

    async def _authenticate(self, password: bytes) -> AuthResult:
        key = None
        if 0 < len(password) <= _KEY_MAX and password.isascii():
            key = await asyncio.to_thread(self._look_up, password.decode("ascii"))
        if key is None or key.scope not in MAY_SUBMIT:
            return AuthResult(success=False, handled=False, message=INVALID)
        return AuthResult(success=True, auth_data=key)

    def _look_up(self, presented: str) -> ApiKey | None:
        """Blocking: reads the key, and at most once a minute per key records its use."""
        now = self.clock()
        with self.engine.connect() as connection:
            key = authenticate(connection, presented, now)
        if key is not None and needs_touch(key, now):
            with self.engine.begin() as connection:
                touch_api_key(connection, key, now)
        return key

    # -- the transaction ------------------------------------------------------------------

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.draining:
            return SHUTTING_DOWN
        key = _api_key(session)
        host = peer_host(session.peer)
        if key is None and not self.policy.trusted.contains(host):
            return AUTH_REQUIRED
        if _address(address) is None:
            return "553 5.1.7 The sender address is not valid"
        if not (envelope.smtp_utf8 or address.isascii()):
            return UNDECLARED_UTF8
        limiter = self.policy.rate_limiter
        if limiter is not None and not limiter.take(key.id if key is not None else host):
            return (
                f"451 4.7.1 Over the limit of {limiter.per_minute} messages a minute; "
                "try again later"
            )
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.policy.max_recipients:
            return TOO_MANY_RECIPIENTS
        if _address(address) is None:
            return "553 5.1.3 The recipient address is not valid"
        if not (envelope.smtp_utf8 or address.isascii()):
            return UNDECLARED_UTF8
        if address not in envelope.rcpt_tos:  # a recipient named twice is sent one copy
            envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.draining:
            return SHUTTING_DOWN
        sender = str(envelope.mail_from)
        data = envelope.original_content
        assert isinstance(data, bytes)  # noqa: S101 - decode_data=False: always bytes
        key = _api_key(session)
        trace = received_field(
            helo=session.host_name,
            host=peer_host(session.peer),
            hostname=server.hostname,
            extended=session.extended_smtp,
            tls=session.ssl is not None,
            authenticated=key is not None,
            smtputf8=bool(envelope.smtp_utf8),
            queue=queue_id(),
            date=date_now(),
        )
        try:
            checked = check_message(
                data,
                sender_domain=sender.rpartition("@")[2],
                max_size=self.policy.max_message_size,
                trace=trace,
            )
        except Refused as refused:
            return refused.reply
        recipients = tuple(envelope.rcpt_tos)
        submission = RawSubmission(
            sender=sender,
            recipients=recipients,
            data=checked.data,
            message_id=checked.message_id,
            subject=checked.subject,
            # What the relay must offer: SMTPUTF8 if an address or the header is not ASCII
            # (RFC 6531, RFC 6532), not because this client asked for it (Go's net/smtp asks
            # whenever it is offered): an ASCII message goes to any relay.
            smtputf8=checked.utf8_headers
            or not (sender.isascii() and all(r.isascii() for r in recipients)),
            stream=self.policy.stream,
            extra={API_KEY_METADATA: key.id} if key is not None else None,
        )
        self.in_flight += 1
        try:
            message_pk = await self.writer.submit(submission, _COMMIT_TIMEOUT)
        except Exception as exc:  # any failure to commit is the same 451
            logger.warning(
                "a submitted message was not stored: %s", type(exc).__name__, exc_info=False
            )
            return NOT_STORED
        finally:
            self.in_flight -= 1
        return f"250 2.0.0 OK queued as {message_pk}"


def _api_key(session: Session) -> ApiKey | None:
    data: Any = session.auth_data if session.authenticated else None
    return data if isinstance(data, ApiKey) else None


def _address(address: str) -> Address | None:
    try:
        return Address.parse(address, "address")
    except MessageError:
        return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None

"""SMTP transport: one connection, reused for every message until it breaks.

Built on aiosmtplib for the protocol; this module owns the dialogue — when to connect, when
to STARTTLS and authenticate, MAIL/RCPT/DATA with a result per recipient, as many transactions
per message as the relay's recipient limit needs — and turns every failure into a
:class:`~mailroom.errors.DeliveryError` classified by the relay's numeric reply and the stage
it came at (see :func:`mailroom.errors.error_from_reply`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import aiosmtplib
from pydantic import SecretStr

from mailroom.errors import (
    AuthenticationError,
    AuthNotOfferedError,
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    PermanentError,
    RelayUnreachableError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TLSError,
    TransientError,
    Verdict,
    error_from_reply,
    split_enhanced_status,
)
from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult, Transport
from mailroom.transports.ehlo import (
    EhloName,
    EhloSource,
    address_literal,
    is_qualified,
    machine_fqdn,
)
from mailroom.transports.recipients import RecipientBatches, is_too_many_recipients
from mailroom.transports.smtp_session import (
    CLOSING,
    MalformedReplyError,
    Reply,
    Session,
    SessionClosedError,
    WriteStalledError,
    dot_stuffed,
)

__all__ = ["SMTPTransport"]

logger = logging.getLogger(__name__)

_RESET_TIMEOUT = 5.0
DEFAULT_MAX_RECIPIENTS = 100
"""Recipients per transaction: all RFC 5321 §4.5.3.1.8 obliges a relay to take."""


@dataclass
class _Part:
    """What one transaction of a delivery did with its recipients."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, DeliveryError] = field(default_factory=dict)
    no_room: list[str] = field(default_factory=list)
    """Recipients the relay had no room for in this transaction ("too many recipients")."""
    no_room_reply: Reply | None = None
    taken: int = 0
    """RCPT commands the relay answered before it had no more room."""
    data_reply: Reply | None = None
    """The reply to the content's final dot: set when the accepted recipients got it."""


def _no_room_error(reply: Reply, recipient: str) -> DeliveryError:
    """A recipient the relay had no room for, to try in a later delivery. Transient even as
    552: RFC 5321 §4.5.3.1.10 says to read RFC 821's 552 "too many recipients" as 452."""
    enhanced, text = split_enhanced_status(reply.text)
    reply_text = " ".join(str(p) for p in (reply.code, enhanced, text) if p)
    return TransientError(
        f"RCPT refused for {recipient}: the relay takes no more recipients now: {reply_text}",
        code=reply.code,
        enhanced_status=enhanced,
        server_text=text,
        recipient=recipient,
        stage=SMTPStage.RCPT,
    )


def _pipeline_stage(unanswered: int, recipients: int) -> SMTPStage:
    """The stage of the ``unanswered``-th command of MAIL, the RCPTs and DATA."""
    if unanswered == 0:
        return SMTPStage.MAIL
    return SMTPStage.RCPT if unanswered <= recipients else SMTPStage.DATA


def _cause_of(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class SMTPTransport(Transport):
    """Delivers over SMTP with STARTTLS (``use_tls``) or implicit TLS (``use_ssl``)."""

    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str = "",
        password: SecretStr | str = "",
        use_tls: bool = False,
        use_ssl: bool = False,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        cafile: Path | None = None,
        local_hostname: str | None = None,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    ) -> None:
        if use_tls and use_ssl:
            raise ValueError("use_tls (STARTTLS) and use_ssl (implicit TLS) exclude each other")
        if max_recipients < 1:
            raise ValueError(f"max_recipients must be at least 1, not {max_recipients}")
        self.host = host
        self.port = port
        self.username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self.use_tls = use_tls
        self.use_ssl = use_ssl
        self.timeout = timeout
        self._tls_context = tls_context
        self._certfile = certfile
        self._keyfile = keyfile
        self._cafile = cafile
        self._local_hostname = local_hostname
        self._fqdn: str | None = None
        self._fqdn_looked_up = False
        self.ehlo_name: EhloName | None = None
        """The name given in EHLO on the latest connection, and where it came from."""
        self.max_recipients = max_recipients
        # Lowered when the relay says it takes fewer, for the connection's life: a new
        # connection starts from max_recipients again (see _ensure_connected).
        self._recipient_limit = max_recipients
        self._session: Session | None = None
        self._progress = SendProgress()  # the account of the send under way (one at a time)
        self._lock = asyncio.Lock()
        self.connections_opened = 0
        """How many connections this transport has opened (each one logged in)."""

    def __repr__(self) -> str:
        return f"<SMTPTransport {self.describe()}>"

    def describe(self) -> str:
        security = "implicit TLS" if self.use_ssl else "STARTTLS" if self.use_tls else "no TLS"
        user = f", user {self.username}" if self.username else ""
        return f"smtp {self.host}:{self.port} ({security}{user})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _make_tls_context(self) -> ssl.SSLContext:
        if self._tls_context is not None:
            return self._tls_context
        context = ssl.create_default_context(cafile=self._cafile)
        if self._certfile:
            context.load_cert_chain(self._certfile, self._keyfile)
        self._tls_context = context
        return context

    # -- connection ---------------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            await self._ensure_connected()

    async def close(self) -> None:
        async with self._lock:
            session, self._session = self._session, None
            if session is not None:
                await session.quit(_RESET_TIMEOUT)

    @property
    def is_connected(self) -> bool:
        return self._session is not None and self._session.is_open

    async def _ensure_connected(self) -> Session:
        if self._session is not None and self._session.is_open:
            return self._session
        self._session = None
        if not self._local_hostname and not self._fqdn_looked_up:
            # Once per transport, and bounded: aiosmtplib would ask on every connection,
            # before connecting, with no time limit.
            self._fqdn = await machine_fqdn(self.timeout)
            self._fqdn_looked_up = True
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.use_ssl,
            start_tls=False,  # we decide on STARTTLS ourselves, below
            tls_context=self._make_tls_context() if self.use_ssl else None,
            # Never None, or aiosmtplib looks the FQDN up itself; the real name is chosen
            # once connected (an address literal needs the connection).
            local_hostname=self._local_hostname or self._fqdn or "localhost",
        )
        stage = SMTPStage.CONNECT
        try:
            await smtp.connect()
            self.ehlo_name = self._choose_ehlo_name(smtp)
            smtp.local_hostname = self.ehlo_name.name  # also for any EHLO aiosmtplib repeats
            stage = SMTPStage.EHLO
            await smtp.ehlo(hostname=self.ehlo_name.name)
            if self.use_tls:
                stage = SMTPStage.STARTTLS
                if not smtp.supports_extension("starttls"):
                    raise TLSError(
                        f"{self.where} does not offer STARTTLS; it may expect implicit TLS "
                        "(EMAIL_USE_SSL) or no TLS at all",
                        stage=stage,
                    )
                await smtp.starttls(tls_context=self._make_tls_context())
                stage = SMTPStage.EHLO
                await smtp.ehlo(hostname=self.ehlo_name.name)
            if self.username:
                stage = SMTPStage.AUTH
                await self._login(smtp)
        except DeliveryError:
            smtp.close()
            raise
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            smtp.close()
            raise self._translate(exc, stage) from exc
        except BaseException:
            smtp.close()  # cancelled (a worker shutting down): leave no half-open connection
            raise
        # From here on the mail transactions are ours (see smtp_session): aiosmtplib's part,
        # the connection set up and logged in, is done.
        # (uvloop's transports are not asyncio.Transport subclasses, hence a cast, no check.)
        connection = cast(asyncio.Transport, smtp.transport)
        self._session = Session(connection, smtp.esmtp_extensions, self.timeout)
        self.connections_opened += 1
        # A "too many recipients" limit learnt on an earlier connection may have been the
        # relay's load or configuration of the moment; learn it again rather than send in
        # smaller transactions for the rest of this transport's life.
        self._recipient_limit = self.max_recipients
        logger.debug(
            "connected to %s", self.describe(), extra={"host": self.host, "port": self.port}
        )
        return self._session

    def _choose_ehlo_name(self, smtp: aiosmtplib.SMTP) -> EhloName:
        """RFC 5321 §4.1.4: EHLO with our FQDN, or an address literal if we have none."""
        if self._local_hostname:
            return EhloName(self._local_hostname, EhloSource.SETTING)
        if self._fqdn and is_qualified(self._fqdn):
            return EhloName(self._fqdn, EhloSource.FQDN, self._fqdn)
        sockname = smtp.get_transport_info("sockname")
        if sockname:
            try:
                return EhloName(address_literal(sockname), EhloSource.ADDRESS_LITERAL, self._fqdn)
            except ValueError:  # not an IP socket (a Unix socket): nothing better to give
                pass
        return EhloName(self._fqdn or "localhost", EhloSource.FQDN, self._fqdn)

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        if not smtp.supports_extension("auth"):
            # Nothing was tried, so nothing was refused: say why not (RFC 4954 §4 lets a relay
            # offer AUTH only once the connection is encrypted, and many do).
            hint = "" if smtp.get_transport_info("sslcontext") else "; it may offer AUTH over TLS"
            raise AuthNotOfferedError(
                f"{self.where} does not offer AUTH{hint}, so no login was tried",
                stage=SMTPStage.AUTH,
            )
        # aiosmtplib tries each mechanism the server offers (CRAM-MD5, PLAIN, LOGIN) in turn.
        await smtp.login(self.username, self._password.get_secret_value())

    def _translate(
        self, exc: BaseException, stage: SMTPStage, recipient: str | None = None
    ) -> DeliveryError:
        """Map a client-library exception to ours: by reply code where there is a reply."""
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400:
            return error_from_reply(exc.code, exc.message, stage, recipient=recipient)
        if isinstance(exc, WriteStalledError):
            return DeliveryTimeoutError(
                f"{self.where} stopped reading: nothing more of ours left within "
                f"{self.timeout:g} s ({stage})",
                stage=stage,
            )
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return DeliveryTimeoutError(
                f"{self.where} did not answer within {self.timeout:g} s ({stage})", stage=stage
            )
        tls_failure = _cause_of(exc, ssl.SSLError)
        if tls_failure is not None:
            return TLSError(f"TLS with {self.where} failed: {tls_failure}", stage=stage)
        if stage is SMTPStage.STARTTLS:
            return TLSError(f"STARTTLS with {self.where} failed: {exc}", stage=stage)
        if _cause_of(exc, ConnectionRefusedError) is not None:
            return RelayUnreachableError(f"{self.where} refused the connection", stage=stage)
        if _cause_of(exc, socket.gaierror) is not None:
            return RelayUnreachableError(f"cannot resolve host {self.host!r}", stage=stage)
        if stage is SMTPStage.AUTH:
            return AuthenticationError(
                f"authentication with {self.where} failed: {exc}", stage=stage
            )
        if isinstance(exc, MalformedReplyError):
            return ConnectionLostError(f"{self.where} {exc} ({stage})", stage=stage)
        if isinstance(exc, SessionClosedError):
            return ConnectionLostError(f"{self.where} closed the connection ({stage})", stage=stage)
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected) or _cause_of(
            exc, aiosmtplib.SMTPServerDisconnected
        ):
            return ConnectionLostError(f"{self.where} closed the connection ({stage})", stage=stage)
        if stage is SMTPStage.CONNECT and isinstance(_cause_of(exc, OSError), OSError):
            return RelayUnreachableError(f"cannot connect to {self.where}: {exc}", stage=stage)
        return ConnectionLostError(
            f"connection to {self.where} failed ({stage}): {exc}", stage=stage
        )

    async def _reset(self, session: Session) -> None:
        """RSET after a refused transaction, so the connection can carry the next message."""
        try:
            await session.command(b"RSET\r\n", _RESET_TIMEOUT)
        except (OSError, TimeoutError):
            session.abort()

    # -- sending ------------------------------------------------------------------------

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        """Deliver to every recipient, in as many transactions on the connection as the
        relay's recipient limit needs (see :mod:`mailroom.transports.recipients`); each
        transaction whose content the relay accepted is recorded in ``progress`` at once."""
        self._check_addresses(envelope)
        async with self._lock:
            limit = self._recipient_limit
            batches = RecipientBatches(envelope.recipients, limit)
            try:
                return await self._deliver(envelope, batches, progress or SendProgress())
            finally:
                # What the relay takes per transaction holds for its later messages on this
                # connection too.
                if batches.limit < limit:
                    self._recipient_limit = batches.limit

    async def _deliver(
        self, envelope: Envelope, batches: RecipientBatches, progress: SendProgress
    ) -> SendResult:
        # The progress is the account of the delivery itself, so that whoever cancels the
        # send knows what the relay already has.
        self._progress = progress
        accepted = progress.accepted
        refused = progress.refused
        data_replies = progress.replies
        last_reply = ""
        while batches:
            batch = batches.next_batch()
            try:
                part = await self._batch(envelope, batch)
            except DeliveryError as error:
                if not accepted:
                    raise  # nothing delivered: the message is tried again as a whole
                # Part of the message is delivered and must not be sent again: the rest is
                # refused with this error, and the worker carries forward what may work later.
                for recipient in (*batch, *batches.take_rest()):
                    refused[recipient] = error
                break
            if part.data_reply is not None:
                last_reply = f"{part.data_reply.code} {part.data_reply.text}"
                data_replies.update(dict.fromkeys(part.accepted, last_reply))
                accepted += part.accepted
            refused.update(part.refused)
            if part.no_room and not batches.no_room(part.no_room, taken=part.taken):
                # The relay took no recipient at all in a transaction of its own: another
                # would fare no better now. Those left wait for a later delivery.
                assert part.no_room_reply is not None  # noqa: S101 - set with no_room
                for recipient in (*part.no_room, *batches.take_rest()):
                    refused[recipient] = _no_room_error(part.no_room_reply, recipient)

        if not accepted:
            # Report the most hopeful verdict: if any recipient may work later, retry.
            errors = list(refused.values())
            first = next((e for e in errors if e.verdict is Verdict.TRANSIENT), errors[0])
            first.refused = refused
            raise first
        return SendResult(
            message_id=envelope.message_id,
            accepted=tuple(accepted),
            transport=self.name,
            reply=last_reply,
            refused=dict(refused),
            location=self.where,
            # Each transaction has its own reply (and queue id); one suffices for one.
            replies=dict(data_replies) if batches.transactions > 1 else {},
        )

    async def _batch(self, envelope: Envelope, recipients: list[str]) -> _Part:
        """One transaction for ``recipients``, on a fresh connection if the kept one was
        dropped while idle."""
        session = await self._ensure_connected()
        try:
            return await self._transaction(session, envelope, recipients)
        except ConnectionLostError as exc:
            if exc.stage is not SMTPStage.MAIL:
                raise
        # The relay dropped an idle connection before accepting anything of this
        # transaction: nothing was delivered by it, so one more try on a fresh one is safe.
        logger.debug("connection to %s was stale; reconnecting", self.where)
        session = await self._ensure_connected()
        return await self._transaction(session, envelope, recipients)

    async def _transaction(
        self, session: Session, envelope: Envelope, recipients: list[str]
    ) -> _Part:
        self._check_capabilities(session, envelope)
        try:
            return await self._exchange(session, envelope, recipients)
        except asyncio.CancelledError:
            session.abort()  # halfway through a transaction, the connection is unusable
            raise

    async def _exchange(self, session: Session, envelope: Envelope, recipients: list[str]) -> _Part:
        """MAIL, RCPT for each of ``recipients`` and, if any was accepted, DATA.

        Raises for what ends the transaction as a whole (sender refused, our configuration
        refused at RCPT, content refused, the connection lost); a recipient refused on its
        own, or for want of room, is in the returned part.
        """
        mail, rcpts = self._envelope_commands(session, envelope, recipients)
        mail_reply, rcpt_replies, data_reply = await self._envelope(session, mail, rcpts)
        if mail_reply.code != 250:
            await self._abandon(session, data_reply)
            raise error_from_reply(mail_reply.code, mail_reply.text, SMTPStage.MAIL)

        part = _Part()
        for position, (recipient, reply) in enumerate(zip(recipients, rcpt_replies, strict=True)):
            if reply.code in (250, 251):
                part.accepted.append(recipient)
            elif is_too_many_recipients(reply.code, reply.text):
                if part.no_room_reply is None:
                    part.no_room_reply, part.taken = reply, position
                part.no_room.append(recipient)
            else:
                error = error_from_reply(
                    reply.code, reply.text, SMTPStage.RCPT, recipient=recipient
                )
                if error.verdict is Verdict.CONFIGURATION:  # about us, not this recipient
                    await self._abandon(session, data_reply)
                    raise error
                part.refused[recipient] = error

        if not part.accepted:
            await self._abandon(session, data_reply)
            return part
        part.data_reply = await self._data(session, envelope, data_reply, part.accepted)
        return part

    async def _envelope(
        self, session: Session, mail: bytes, rcpts: list[bytes]
    ) -> tuple[Reply, list[Reply], Reply | None]:
        """The replies to MAIL, to each RCPT (none if MAIL was refused without pipelining)
        and, when pipelined, to DATA."""
        stage = SMTPStage.MAIL
        try:
            if session.pipelining:
                # RFC 2920: MAIL, the RCPTs and DATA in one write, the replies read in order.
                received: list[Reply] = []
                group = b"".join((mail, *rcpts, b"DATA\r\n"))
                try:
                    await session.write(group, len(rcpts) + 2, received=received)
                except (OSError, TimeoutError):
                    stage = _pipeline_stage(len(received), len(rcpts))
                    raise
                return received[0], received[1:-1], received[-1]
            mail_reply = await session.command(mail)
            rcpt_replies: list[Reply] = []
            if mail_reply.code == 250:
                stage = SMTPStage.RCPT
                for position, rcpt in enumerate(rcpts):
                    reply = await session.command(rcpt)
                    if reply.code == CLOSING or is_too_many_recipients(reply.code, reply.text):
                        # The relay hangs up, or has no room for more in this transaction:
                        # the same answer for the rest, which are not sent.
                        rcpt_replies += [reply] * (len(rcpts) - position)
                        break
                    rcpt_replies.append(reply)
            return mail_reply, rcpt_replies, None
        except (OSError, TimeoutError) as exc:
            raise self._translate(exc, stage) from exc

    def _check_addresses(self, envelope: Envelope) -> None:
        for address in (envelope.sender, *envelope.recipients):
            # Addresses were validated when the message was built; a row edited by hand must
            # still never smuggle a second command in (RFC 5321 §4.1.1: a line is a command).
            if "\r" in address or "\n" in address or ">" in address:
                raise PermanentError(
                    f"message {envelope.message_id} has an invalid envelope address {address!r}",
                    stage=SMTPStage.MAIL,
                )

    def _envelope_commands(
        self, session: Session, envelope: Envelope, recipients: list[str]
    ) -> tuple[bytes, list[bytes]]:
        """The MAIL command and one RCPT command per recipient, encoded for the wire (the
        addresses were checked by :meth:`_check_addresses`)."""
        options = ""
        if session.supports("size"):
            options = f" SIZE={len(envelope.data)}"  # RFC 1870: let it refuse early
        if envelope.smtputf8:
            options += " SMTPUTF8 BODY=8BITMIME"
        encoding = "utf-8" if envelope.smtputf8 else "ascii"
        return (
            f"MAIL FROM:<{envelope.sender}>{options}\r\n".encode(encoding),
            [f"RCPT TO:<{r}>\r\n".encode(encoding) for r in recipients],
        )

    async def _abandon(self, session: Session, data_reply: Reply | None) -> None:
        """End a transaction that will carry no content, and RSET for the next one."""
        if data_reply is not None and data_reply.code == 354:
            # A pipelining relay said "go ahead" with no recipient accepted (RFC 2920
            # §3.1 allows it): end the content at once, empty, before resetting.
            try:
                await session.command(b".\r\n", _RESET_TIMEOUT)
            except (OSError, TimeoutError):
                session.abort()
                return
        await self._reset(session)

    async def _data(
        self, session: Session, envelope: Envelope, go_ahead: Reply | None, recipients: list[str]
    ) -> Reply:
        """DATA in two steps, so silence after the final dot is told apart from a failure
        before it: only the former may mean the relay accepted the message (for
        ``recipients``, those of this transaction)."""
        if go_ahead is None:  # not pipelined: DATA has not been sent yet
            try:
                go_ahead = await session.command(b"DATA\r\n")
            except (OSError, TimeoutError) as exc:
                raise self._translate(exc, SMTPStage.DATA) from exc
        if go_ahead.code != 354:
            await self._reset(session)
            raise error_from_reply(go_ahead.code, go_ahead.text, SMTPStage.DATA)
        try:
            pending = session.write(dot_stuffed(envelope.data), 1)
        except OSError as exc:
            session.abort()
            raise self._translate(exc, SMTPStage.DATA) from exc
        try:
            [reply] = await pending
        except asyncio.CancelledError:
            # Cut short (a stop, the end of the lease) while the reply was awaited: if the
            # final dot has left, the relay may have taken the message (RFC 5321 §4.1.1.4).
            # Checked before the connection is dropped, which discards what is unsent.
            if session.all_written:
                self._progress.unanswered = list(recipients)
            raise
        except (OSError, TimeoutError) as exc:
            # Only if the final dot left this process can the relay have taken the message;
            # one that stopped reading before the end never saw it (RFC 5321 §4.1.1.4).
            complete = session.all_written and not isinstance(exc, WriteStalledError)
            session.abort()
            error = self._translate(exc, SMTPStage.DATA)
            error.possibly_delivered = complete
            raise error from exc
        if reply.code != 250:
            await self._reset(session)
            raise error_from_reply(reply.code, reply.text, SMTPStage.DATA)
        return reply

    def _check_capabilities(self, session: Session, envelope: Envelope) -> None:
        if envelope.smtputf8 and not session.supports("smtputf8"):
            raise SMTPUTF8UnsupportedError(
                f"an address of message {envelope.message_id} has a non-ASCII local part and "
                f"{self.where} does not offer SMTPUTF8 (RFC 6531)",
                stage=SMTPStage.MAIL,
            )
        limit = session.extensions.get("size", "").strip()
        if limit.isdigit() and 0 < int(limit) < len(envelope.data):
            raise PermanentError(
                f"message {envelope.message_id} is {len(envelope.data)} bytes; "
                f"{self.where} accepts at most {limit} (its SIZE)",
                stage=SMTPStage.MAIL,
            )

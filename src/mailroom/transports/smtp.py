"""SMTP transport: one connection, reused for every message until it breaks.

Built on aiosmtplib for the protocol; this module owns the dialogue — when to connect, when
to STARTTLS and authenticate, MAIL/RCPT/DATA with a result per recipient — and turns every
failure into a :class:`~mailroom.errors.DeliveryError` classified by the relay's numeric
reply and the stage it came at (see :func:`mailroom.errors.classify_reply`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from pathlib import Path

import aiosmtplib
from pydantic import SecretStr

from mailroom.errors import (
    AuthenticationError,
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    PermanentError,
    RelayUnreachableError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TLSError,
    Verdict,
    error_from_reply,
)
from mailroom.message import Envelope
from mailroom.transports.base import SendResult, Transport

__all__ = ["SMTPTransport"]

logger = logging.getLogger(__name__)

_RESET_TIMEOUT = 5.0


_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def _dot_stuffed(data: bytes) -> bytes:
    """The message as sent after DATA: leading dots doubled, ended by CRLF.CRLF (RFC 5321
    §4.5.2). Our bytes already use CRLF line ends (email.policy.SMTP)."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


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
    ) -> None:
        if use_tls and use_ssl:
            raise ValueError("use_tls (STARTTLS) and use_ssl (implicit TLS) exclude each other")
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
        self._smtp: aiosmtplib.SMTP | None = None
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
            smtp, self._smtp = self._smtp, None
            if smtp is None or not smtp.is_connected:
                return
            try:
                await smtp.quit(timeout=_RESET_TIMEOUT)
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    @property
    def is_connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def _ensure_connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self._smtp = None
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.use_ssl,
            start_tls=False,  # we decide on STARTTLS ourselves, below
            tls_context=self._make_tls_context() if self.use_ssl else None,
            local_hostname=self._local_hostname,
        )
        stage = SMTPStage.CONNECT
        try:
            await smtp.connect()
            stage = SMTPStage.EHLO
            await smtp.ehlo()
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
                await smtp.ehlo()
            if self.username:
                stage = SMTPStage.AUTH
                await self._login(smtp)
        except DeliveryError:
            smtp.close()
            raise
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            smtp.close()
            raise self._translate(exc, stage) from exc
        self._smtp = smtp
        self.connections_opened += 1
        logger.debug(
            "connected to %s", self.describe(), extra={"host": self.host, "port": self.port}
        )
        return smtp

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        if not smtp.supports_extension("auth"):
            hint = "" if smtp.get_transport_info("sslcontext") else "; it may offer AUTH over TLS"
            raise AuthenticationError(
                f"{self.where} does not offer AUTH{hint}", stage=SMTPStage.AUTH
            )
        # aiosmtplib tries each mechanism the server offers (CRAM-MD5, PLAIN, LOGIN) in turn.
        await smtp.login(self.username, self._password.get_secret_value())

    def _translate(
        self, exc: BaseException, stage: SMTPStage, recipient: str | None = None
    ) -> DeliveryError:
        """Map a client-library exception to ours: by reply code where there is a reply."""
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400:
            return error_from_reply(exc.code, exc.message, stage, recipient=recipient)
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
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected) or _cause_of(
            exc, aiosmtplib.SMTPServerDisconnected
        ):
            return ConnectionLostError(f"{self.where} closed the connection ({stage})", stage=stage)
        if stage is SMTPStage.CONNECT and isinstance(_cause_of(exc, OSError), OSError):
            return RelayUnreachableError(f"cannot connect to {self.where}: {exc}", stage=stage)
        return ConnectionLostError(
            f"connection to {self.where} failed ({stage}): {exc}", stage=stage
        )

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        """RSET after a refused transaction, so the connection can carry the next message."""
        try:
            await smtp.rset(timeout=_RESET_TIMEOUT)
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()

    # -- sending ------------------------------------------------------------------------

    async def send(self, envelope: Envelope) -> SendResult:
        async with self._lock:
            smtp = await self._ensure_connected()
            try:
                return await self._transaction(smtp, envelope)
            except ConnectionLostError as exc:
                if exc.stage is not SMTPStage.MAIL:
                    raise
            # The relay dropped an idle connection before accepting anything of this
            # message: nothing was delivered, so one more try on a fresh connection is safe.
            logger.debug("connection to %s was stale; reconnecting", self.where)
            smtp = await self._ensure_connected()
            return await self._transaction(smtp, envelope)

    async def _transaction(self, smtp: aiosmtplib.SMTP, envelope: Envelope) -> SendResult:
        self._check_capabilities(smtp, envelope)
        encoding = "utf-8" if envelope.smtputf8 else "ascii"
        options: list[str] = []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(envelope.data)}")  # RFC 1870: let it refuse early
        if envelope.smtputf8:
            options += ["SMTPUTF8", "BODY=8BITMIME"]

        try:
            await smtp.mail(envelope.sender, options=options, encoding=encoding)
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = self._translate(exc, SMTPStage.MAIL)
            await self._reset(smtp)
            raise error from exc

        accepted: list[str] = []
        refused: dict[str, DeliveryError] = {}
        for recipient in envelope.recipients:
            try:
                await smtp.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                error = self._translate(exc, SMTPStage.RCPT, recipient)
                if error.verdict is Verdict.CONFIGURATION:  # about us, not this recipient
                    await self._reset(smtp)
                    raise error from exc
                refused[recipient] = error
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise self._translate(exc, SMTPStage.RCPT, recipient) from exc
            else:
                accepted.append(recipient)

        if not accepted:
            await self._reset(smtp)
            # Report the most hopeful verdict: if any recipient may work later, retry.
            errors = list(refused.values())
            first = next((e for e in errors if e.verdict is Verdict.TRANSIENT), errors[0])
            first.refused = refused
            raise first

        reply = await self._data(smtp, envelope)
        return SendResult(
            message_id=envelope.message_id,
            accepted=tuple(accepted),
            transport=self.name,
            reply=f"{reply.code} {reply.message}",
            refused=refused,
            location=self.where,
        )

    async def _data(self, smtp: aiosmtplib.SMTP, envelope: Envelope) -> aiosmtplib.SMTPResponse:
        """DATA in two steps, so silence after the final dot is told apart from a failure
        before it: only the former may mean the relay accepted the message."""
        try:
            go_ahead = await smtp.execute_command(b"DATA")
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._translate(exc, SMTPStage.DATA) from exc
        if go_ahead.code != 354:
            await self._reset(smtp)
            raise error_from_reply(go_ahead.code, go_ahead.message, SMTPStage.DATA)
        protocol = smtp.protocol
        try:
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost before the content")
            protocol.write(_dot_stuffed(envelope.data))
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._translate(exc, SMTPStage.DATA) from exc
        try:
            # No await between the write and this read: the reply cannot be missed.
            reply = await protocol.read_response(timeout=self.timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            error = self._translate(exc, SMTPStage.DATA)
            error.possibly_delivered = True
            raise error from exc
        if reply.code != 250:
            await self._reset(smtp)
            raise error_from_reply(reply.code, reply.message, SMTPStage.DATA)
        return reply

    def _check_capabilities(self, smtp: aiosmtplib.SMTP, envelope: Envelope) -> None:
        if envelope.smtputf8 and not smtp.supports_extension("smtputf8"):
            raise SMTPUTF8UnsupportedError(
                f"an address of message {envelope.message_id} has a non-ASCII local part and "
                f"{self.where} does not offer SMTPUTF8 (RFC 6531)",
                stage=SMTPStage.MAIL,
            )
        limit = smtp.esmtp_extensions.get("size", "").strip()
        if limit.isdigit() and 0 < int(limit) < len(envelope.data):
            raise PermanentError(
                f"message {envelope.message_id} is {len(envelope.data)} bytes; "
                f"{self.where} accepts at most {limit} (its SIZE)",
                stage=SMTPStage.MAIL,
            )

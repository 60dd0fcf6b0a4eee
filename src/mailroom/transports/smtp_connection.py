"""The SMTP transport's connection: open it, choose the EHLO name, STARTTLS, log in, reset.

aiosmtplib speaks the protocol up to a connection that is set up and logged in; from there the
mail transactions are :mod:`~mailroom.transports.smtp`'s, over a
:class:`~mailroom.transports.smtp_session.Session` on the same socket. Every failure on the way
becomes a :class:`~mailroom.errors.DeliveryError` (:mod:`~mailroom.transports.smtp_failures`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import cast

import aiosmtplib
from pydantic import SecretStr

from mailroom.errors import AuthNotOfferedError, DeliveryError, SMTPStage, TLSError
from mailroom.transports.base import SendProgress, Transport
from mailroom.transports.ehlo import (
    EhloName,
    EhloSource,
    address_literal,
    is_qualified,
    machine_fqdn,
)
from mailroom.transports.smtp_failures import translate
from mailroom.transports.smtp_session import Session

__all__ = ["DEFAULT_MAX_RECIPIENTS", "RESET_TIMEOUT", "SMTPConnection"]

logger = logging.getLogger("mailroom.transports.smtp")  # one logger for the whole transport

RESET_TIMEOUT = 5.0
"""Seconds for RSET and QUIT, which must not hold up the next message for long."""
DEFAULT_MAX_RECIPIENTS = 100
"""Recipients per transaction: all RFC 5321 §4.5.3.1.8 obliges a relay to take."""


class SMTPConnection(Transport):
    """The connection half of :class:`~mailroom.transports.smtp.SMTPTransport`: its settings,
    and one connection to the relay, opened, secured and logged in when first needed."""

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
        return f"<{type(self).__name__} {self.describe()}>"

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
                await session.quit(RESET_TIMEOUT)

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
        """Our error for a client-library failure (:mod:`~mailroom.transports.smtp_failures`)."""
        return translate(
            exc, stage, host=self.host, port=self.port, timeout=self.timeout, recipient=recipient
        )

    async def _reset(self, session: Session) -> None:
        """RSET after a refused transaction, so the connection can carry the next message."""
        try:
            await session.command(b"RSET\r\n", RESET_TIMEOUT)
        except (OSError, TimeoutError):
            session.abort()

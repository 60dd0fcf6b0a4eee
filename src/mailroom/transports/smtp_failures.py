"""Which of our errors a client-library failure becomes: one table, read top to bottom.

aiosmtplib (connection setup), the :mod:`~mailroom.transports.smtp_session` (mail
transactions), :mod:`ssl` and the socket layer each raise exceptions of their own. A failure
that carries an SMTP reply is classified by the reply (:func:`error_from_reply`); every other
one by the first row of :data:`FAILURES` that matches it — the exception's class (or, for a
row that says so, a class anywhere in its chain of causes) and, where a row names one, the
stage of the dialogue. Rows are ordered most specific first, as in httpx's mapping of
httpcore's exceptions; the last row matches everything.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from mailroom.errors import (
    AuthenticationError,
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    RelayUnreachableError,
    SMTPStage,
    TLSError,
)
from mailroom.transports.smtp_replies import error_from_reply
from mailroom.transports.smtp_session import (
    MalformedReplyError,
    SessionClosedError,
    WriteStalledError,
)

__all__ = ["FAILURES", "Failure", "translate"]


@dataclass(frozen=True, slots=True)
class Failure:
    """One row: a library failure that matches ``raised`` becomes ``error`` with ``message``.

    ``message`` is formatted with ``where`` (host:port), ``host``, ``timeout``, ``stage``,
    ``exc`` (the failure) and ``cause`` (what matched in its chain)."""

    raised: type[BaseException] | tuple[type[BaseException], ...]
    error: type[DeliveryError]
    message: str
    stage: SMTPStage | None = None
    """Only at this stage of the dialogue."""
    in_chain: bool = False
    """Match ``raised`` anywhere in the chain of causes, not only the exception itself: aiosmtplib
    wraps the socket's and TLS's errors in its own."""


FAILURES: tuple[Failure, ...] = (
    Failure(
        WriteStalledError,
        DeliveryTimeoutError,
        "{where} stopped reading: nothing more of ours left within {timeout:g} s ({stage})",
    ),
    Failure(
        (aiosmtplib.SMTPTimeoutError, TimeoutError),
        DeliveryTimeoutError,
        "{where} did not answer within {timeout:g} s ({stage})",
    ),
    Failure(ssl.SSLError, TLSError, "TLS with {where} failed: {cause}", in_chain=True),
    Failure(
        BaseException, TLSError, "STARTTLS with {where} failed: {exc}", stage=SMTPStage.STARTTLS
    ),
    Failure(
        ConnectionRefusedError,
        RelayUnreachableError,
        "{where} refused the connection",
        in_chain=True,
    ),
    Failure(socket.gaierror, RelayUnreachableError, "cannot resolve host {host!r}", in_chain=True),
    Failure(
        BaseException,
        AuthenticationError,
        "authentication with {where} failed: {exc}",
        stage=SMTPStage.AUTH,
    ),
    Failure(MalformedReplyError, ConnectionLostError, "{where} {exc} ({stage})"),
    Failure(SessionClosedError, ConnectionLostError, "{where} closed the connection ({stage})"),
    Failure(
        aiosmtplib.SMTPServerDisconnected,
        ConnectionLostError,
        "{where} closed the connection ({stage})",
        in_chain=True,
    ),
    Failure(
        OSError,
        RelayUnreachableError,
        "cannot connect to {where}: {exc}",
        stage=SMTPStage.CONNECT,
        in_chain=True,
    ),
    Failure(BaseException, ConnectionLostError, "connection to {where} failed ({stage}): {exc}"),
)


def _in_chain(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def translate(
    exc: BaseException,
    stage: SMTPStage,
    *,
    host: str,
    port: int,
    timeout: float,
    recipient: str | None = None,
) -> DeliveryError:
    """Our error for a library failure at ``stage``: by reply code where there is a reply,
    else by the first row of :data:`FAILURES` that matches."""
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400:
        return error_from_reply(exc.code, exc.message, stage, recipient=recipient)
    for row in FAILURES:
        if row.stage is not None and row.stage is not stage:
            continue
        cause = _in_chain(exc, row.raised) if row.in_chain else exc
        if cause is None or not isinstance(cause, row.raised):
            continue
        message = row.message.format(
            where=f"{host}:{port}", host=host, timeout=timeout, stage=stage, exc=exc, cause=cause
        )
        return row.error(message, stage=stage)
    raise AssertionError("the last row of FAILURES matches every exception")  # pragma: no cover

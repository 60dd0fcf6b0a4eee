"""Transports deliver built envelopes: ``smtp`` for real, the rest for development and tests
(``capture``, the default, keeps them in the outbox database for people to look at)."""

from __future__ import annotations

from typing import TextIO

from mailroom.config import Settings, TransportName
from mailroom.errors import TransportSetupError
from mailroom.transports.base import SendResult, Transport
from mailroom.transports.capture import CaptureSink, CaptureTransport
from mailroom.transports.console import ConsoleTransport
from mailroom.transports.file import FileTransport
from mailroom.transports.memory import MemoryTransport
from mailroom.transports.null import NullTransport
from mailroom.transports.smtp import SMTPTransport

__all__ = [
    "CaptureSink",
    "CaptureTransport",
    "ConsoleTransport",
    "FileTransport",
    "MemoryTransport",
    "NullTransport",
    "SMTPTransport",
    "SendResult",
    "Transport",
    "transport_from_settings",
]


def transport_from_settings(
    settings: Settings,
    *,
    console: TextIO | None = None,
    capture_sink: CaptureSink | None = None,
) -> Transport:
    """The transport ``MAILROOM_TRANSPORT`` names, configured from ``settings``.

    ``capture`` stores into the outbox database, which this layer cannot reach: the caller
    (the worker, ``mailroom send-test-email``) passes the ``capture_sink`` that does."""
    match settings.MAILROOM_TRANSPORT:
        case TransportName.SMTP:
            return SMTPTransport(
                host=settings.EMAIL_HOST,
                port=settings.port,
                username=settings.EMAIL_HOST_USER,
                password=settings.EMAIL_HOST_PASSWORD,
                use_tls=settings.EMAIL_USE_TLS,
                use_ssl=settings.EMAIL_USE_SSL,
                timeout=settings.EMAIL_TIMEOUT,
                certfile=settings.EMAIL_SSL_CERTFILE,
                keyfile=settings.EMAIL_SSL_KEYFILE,
                cafile=settings.EMAIL_SSL_CAFILE,
                local_hostname=settings.EMAIL_LOCAL_HOSTNAME,
                max_recipients=settings.EMAIL_MAX_RECIPIENTS_PER_MESSAGE,
            )
        case TransportName.CONSOLE:
            return ConsoleTransport(console)
        case TransportName.FILE:
            return FileTransport(settings.EMAIL_FILE_PATH)
        case TransportName.MEMORY:
            return MemoryTransport()
        case TransportName.NULL:
            return NullTransport()
        case TransportName.CAPTURE:
            if capture_sink is None:
                raise TransportSetupError(
                    "MAILROOM_TRANSPORT is capture, which stores into the outbox database: "
                    "run it through a worker (mailroom worker, mailroom serve), which has one"
                )
            return CaptureTransport(capture_sink)

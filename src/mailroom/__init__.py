"""Mailroom: outbound email for Python web applications.

The public API. Everything else is importable but may change between releases.
"""

from __future__ import annotations

from mailroom.config import Backend, Settings, load_settings
from mailroom.errors import (
    ConfigurationError,
    DeliveryError,
    MailroomError,
    MessageError,
    PermanentError,
    SettingsError,
    TransientError,
    Verdict,
)
from mailroom.message import Address, Attachment, Envelope, Message, build_envelope
from mailroom.outbox.store import Outbox
from mailroom.sending import configure, send, send_many
from mailroom.transports import SendResult, Transport, transport_from_settings

__version__ = "0.1.0"

__all__ = [
    "Address",
    "Attachment",
    "Backend",
    "ConfigurationError",
    "DeliveryError",
    "Envelope",
    "MailroomError",
    "Message",
    "MessageError",
    "Outbox",
    "PermanentError",
    "SendResult",
    "Settings",
    "SettingsError",
    "TransientError",
    "Transport",
    "Verdict",
    "__version__",
    "build_envelope",
    "configure",
    "load_settings",
    "send",
    "send_many",
    "transport_from_settings",
]

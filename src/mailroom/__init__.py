"""Mailroom: outbound email for Python web applications.

The public API. Everything else is importable but may change between releases.
"""

from __future__ import annotations

from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.config import Backend, Settings, load_settings
from mailroom.errors import (
    ConfigurationError,
    DeliveryError,
    InvalidTokenError,
    MailroomError,
    MessageError,
    NotificationError,
    PermanentError,
    SettingsError,
    TemplateError,
    TransientError,
    Verdict,
)
from mailroom.integrations.logging import AdminEmailHandler
from mailroom.message import Address, Attachment, Envelope, Message, build_envelope
from mailroom.notifications import (
    NotificationType,
    Notifier,
    NotifyResult,
    Recipient,
    notify,
    register_notification_type,
)
from mailroom.outbox.schema import SuppressionReason
from mailroom.outbox.store import Outbox
from mailroom.sending import configure, send, send_many
from mailroom.transports import SendResult, Transport, transport_from_settings

__version__ = "0.1.0"

__all__ = [
    "Address",
    "AdminEmailHandler",
    "Attachment",
    "Backend",
    "ConfigurationError",
    "DeliveryError",
    "Envelope",
    "InvalidTokenError",
    "MailroomError",
    "Message",
    "MessageError",
    "NotificationError",
    "NotificationType",
    "Notifier",
    "NotifyResult",
    "Outbox",
    "PermanentError",
    "Recipient",
    "SendResult",
    "Settings",
    "SettingsError",
    "SuppressionReason",
    "Template",
    "TemplateError",
    "TemplateLibrary",
    "TransientError",
    "Transport",
    "Verdict",
    "__version__",
    "build_envelope",
    "configure",
    "load_settings",
    "notify",
    "register_notification_type",
    "send",
    "send_many",
    "transport_from_settings",
]

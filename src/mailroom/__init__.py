"""Mailroom: outbound email for Python web applications.

The public API. Everything else is importable but may change between releases.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mailroom.config import Backend, Settings, TransportName, load_settings
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
    TransportSetupError,
    Verdict,
)
from mailroom.message import Address, Attachment, Envelope, Message, build_envelope
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import SuppressionReason
from mailroom.sending import configure, send, send_many
from mailroom.transports import SendResult, Transport, transport_from_settings

if TYPE_CHECKING:
    from mailroom.compose.templates import Template, TemplateLibrary
    from mailroom.integrations.logging import AdminEmailHandler
    from mailroom.notifications import (
        NotificationType,
        Notifier,
        NotifyResult,
        Recipient,
        notify,
        register_notification_type,
    )

# Imported on first use: templates pull in Jinja2, CSS inlining and HTML-to-text, which a
# worker process (or `import mailroom` in a web app's start-up) should not pay for.
_LAZY = {
    "Template": "mailroom.compose.templates",
    "TemplateLibrary": "mailroom.compose.templates",
    "AdminEmailHandler": "mailroom.integrations.logging",
    "NotificationType": "mailroom.notifications",
    "Notifier": "mailroom.notifications",
    "NotifyResult": "mailroom.notifications",
    "Recipient": "mailroom.notifications",
    "notify": "mailroom.notifications",
    "register_notification_type": "mailroom.notifications",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mailroom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "TransportName",
    "TransportSetupError",
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

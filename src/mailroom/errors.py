"""Every exception Mailroom raises.

The tree::

    MailroomError
    ├── SettingsError (ValueError)          a setting is wrong; names the setting
    ├── MessageError (ValueError)           the message cannot be built as given; names the field
    │   ├── HeaderInjectionError            CR, LF or NUL in a header field
    │   ├── InvalidAddressError             not an address we can send to
    │   ├── MessageTooLargeError            over EMAIL_MAX_MESSAGE_SIZE
    │   ├── TemplateError                   a template is missing, unsafe or fails to render
    │   └── IdempotencyConflictError        an idempotency key reused for different content
    ├── BatchError (ValueError)             items of an all-or-nothing batch at fault, by position
    ├── NotificationError (ValueError)      an unknown or badly declared notification type
    ├── CampaignError (ValueError)          no such list or contact, or not in a state to do that
    │   └── CampaignNotFoundError           no campaign has that id
    ├── InvalidTokenError (ValueError)      an unsubscribe token that is forged, altered or old
    ├── SchemaOutdatedError                 the outbox schema is older or newer than expected
    ├── DatabaseError                       the outbox database cannot be used; names DATABASE_URL
    │   ├── DatabaseUnreachableError (ConnectionError)
    │   │                                   no server there, no such database, login refused
    │   ├── DatabaseDriverMissingError      the Python driver for DATABASE_URL's scheme is missing
    │   ├── DatabaseFileError               the SQLite file is missing, read-only, a directory or
    │   │                                   not a database (corrupt or truncated)
    │   ├── DatabaseFullError               the disk (or the database's size limit) is full
    │   └── DatabaseBusyError               a statement waited too long for another session's lock
    ├── EnqueueTimeoutError (TimeoutError)  Django's backend, called from async code, waited
    │                                       longer than its timeout for the commit
    ├── NothingSelectedError (ValueError)   a retry or cancel given no ids and no filter
    ├── InvalidCursorError (ValueError)     a search's page cursor that it did not make
    └── DeliveryError                       the transport could not deliver; carries the reply
        ├── TransientError                  try again later (4xx, dropped connection, timeout)
        │   ├── DeliveryTimeoutError (TimeoutError)
        │   └── ConnectionLostError (ConnectionError)
        ├── PermanentError                  this message or recipient will never be accepted
        │   └── SMTPUTF8UnsupportedError    an address needs SMTPUTF8, the relay lacks it
        └── TransportSetupError             the relay refused our setup (or cannot be reached);
            │                               fix the transport's settings, don't fail the mail
            ├── RelayUnreachableError (ConnectionError)   refused connection, unknown host
            ├── TLSError                    handshake, certificate or STARTTLS mismatch
            ├── AuthenticationError         the relay refused our credentials
            │   └── AuthNotOfferedError     we have credentials, the relay offers no AUTH
            ├── SenderRefusedError          the relay will not send from our address
            ├── HeloRefusedError            the relay refused the name we gave in EHLO
            └── RelayDeniedError            the relay will not pass mail on for this client

``TransportSetupError`` was called ``ConfigurationError``; that name stays as an alias for
this release. It is not :class:`SettingsError` (a setting Mailroom cannot use, found before
anything is sent): it is a relay, or a file transport's folder, refusing what our settings set
up — credentials, TLS, sender address, EHLO name.

Two enums live here because they are fields of :class:`DeliveryError`, and this module imports
nothing of Mailroom's: :class:`Verdict` (what a failure means for the message) and
:class:`SMTPStage` (where in the dialogue a reply came). Which verdict an SMTP reply gets is
decided in :mod:`mailroom.transports.smtp_replies`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "AuthNotOfferedError",
    "AuthenticationError",
    "BatchError",
    "CampaignError",
    "CampaignNotFoundError",
    "ConfigurationError",
    "ConnectionLostError",
    "DatabaseBusyError",
    "DatabaseDriverMissingError",
    "DatabaseError",
    "DatabaseFileError",
    "DatabaseFullError",
    "DatabaseUnreachableError",
    "DeliveryError",
    "DeliveryTimeoutError",
    "EnqueueTimeoutError",
    "HeaderInjectionError",
    "HeloRefusedError",
    "IdempotencyConflictError",
    "InvalidAddressError",
    "InvalidCursorError",
    "InvalidTokenError",
    "MailroomError",
    "MessageError",
    "MessageTooLargeError",
    "NothingSelectedError",
    "NotificationError",
    "PermanentError",
    "RelayDeniedError",
    "RelayUnreachableError",
    "SMTPStage",
    "SMTPUTF8UnsupportedError",
    "SchemaOutdatedError",
    "SenderRefusedError",
    "SettingsError",
    "TLSError",
    "TemplateError",
    "TransientError",
    "TransportSetupError",
    "Verdict",
    "format_reply",
]


class Verdict(StrEnum):
    """What a delivery failure means for the message."""

    TRANSIENT = "transient"
    """Try again later: the relay is busy, the mailbox is full for now, the line dropped."""
    PERMANENT = "permanent"
    """This message or recipient will never be accepted; retrying cannot help."""
    CONFIGURATION = "configuration"
    """Our own setup is wrong (password, TLS, sender address); no message is at fault. (The
    value is stored in the database; the error class is :class:`TransportSetupError`.)"""


class SMTPStage(StrEnum):
    """The point of the SMTP dialogue at which a reply (or silence) came."""

    CONNECT = "connect"
    """Opening the TCP connection and reading the 220 greeting."""
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    """MAIL FROM: the relay judges our sender."""
    RCPT = "rcpt"
    """RCPT TO: the relay judges one recipient."""
    DATA = "data"
    """The DATA command, the message content and the reply to its final dot."""


def format_reply(code: int | None, enhanced_status: str | None, text: str | None) -> str:
    """An SMTP reply as one line, from the parts present: ``550 5.1.1 no such user``.

    The one formatter of replies (exceptions, send log, CLI); it lives here, in the lowest
    module, because :attr:`DeliveryError.reply` needs it. Import it from
    :mod:`mailroom.transports.smtp_replies`, beside the rest of the reply handling.
    """
    return " ".join(str(part) for part in (code, enhanced_status, text) if part)


class MailroomError(Exception):
    """The root of every exception Mailroom raises on purpose."""


class SettingsError(MailroomError, ValueError):
    """A setting has a value Mailroom cannot work with.

    ``setting`` is the name to change (``EMAIL_PORT``); the message says what to change it to.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class MessageError(MailroomError, ValueError):
    """The message cannot be built as given; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class HeaderInjectionError(MessageError):
    """A header field contains CR, LF or NUL, which could smuggle in headers of its own."""


class InvalidAddressError(MessageError):
    """An address that is not a deliverable mailbox (``local@domain``)."""


class MessageTooLargeError(MessageError):
    """The built message is larger than the configured limit."""


class TemplateError(MessageError):
    """A template cannot be found, is not valid Jinja, or fails to render (an undefined
    variable, a sandbox violation, a bound on time or size); ``field`` names the template."""

    def __init__(self, template: str, message: str) -> None:
        super().__init__(f"template {template}", message)
        self.template = template


class IdempotencyConflictError(MessageError):
    """An idempotency key already names a message with different content; ``message_pk`` is
    that message. A retry with the same content gets its id back instead."""

    def __init__(self, key: str, message_pk: int) -> None:
        super().__init__(
            "idempotency_key",
            f"{key!r} was already used for a different message (id {message_pk}); a retry "
            "must send the same content, and a new message needs a new key",
        )
        self.key = key
        self.message_pk = message_pk


class BatchError(MailroomError, ValueError):
    """Items of an all-or-nothing batch cannot be sent as given, so none was committed.

    ``errors`` maps each faulty item's position (from 0) to its :class:`MessageError`, every
    one of them, not only the first: a caller fixes the whole batch in one round.
    """

    def __init__(self, errors: Mapping[int, MessageError]) -> None:
        self.errors = dict(sorted(errors.items()))
        first, error = next(iter(self.errors.items()))
        more = len(self.errors) - 1
        also = f" (and {more} more)" if more else ""
        super().__init__(f"message {first}: {error}{also}; nothing was committed")


class NotificationError(MailroomError, ValueError):
    """An unknown notification type, or one declared inconsistently."""


class InvalidTokenError(MailroomError, ValueError):
    """An unsubscribe or preferences token that is not valid.

    The message is the same whatever was wrong (altered, expired, for another recipient,
    not a token at all), so the answer tells a forger nothing.
    """

    def __init__(self) -> None:
        super().__init__("this link is not valid or has expired")


class SchemaOutdatedError(MailroomError):
    """The database schema is older (or newer) than this version of Mailroom expects."""


class DatabaseError(MailroomError):
    """The outbox database (``DATABASE_URL``) cannot be used as configured.

    The message names ``DATABASE_URL`` (its password masked), what is wrong and the fix;
    ``setting`` is always ``"DATABASE_URL"``.
    """

    setting = "DATABASE_URL"


class DatabaseUnreachableError(DatabaseError, ConnectionError):
    """No database server answers at DATABASE_URL's host and port, the database named there
    does not exist, or the server refused the login."""


class DatabaseDriverMissingError(DatabaseError):
    """The Python driver for DATABASE_URL's scheme is not installed."""


class DatabaseFileError(DatabaseError):
    """The SQLite file is missing, cannot be written, is a directory, or is not a database."""


class DatabaseFullError(DatabaseError):
    """The database could not grow: the disk or file system is full (or a size limit)."""


class DatabaseBusyError(DatabaseError):
    """A statement ran or waited longer than its timeout (PostgreSQL's ``statement_timeout``
    or ``lock_timeout``, SQLite's busy timeout), most likely behind a lock another session
    holds; it may succeed when tried again."""


class EnqueueTimeoutError(MailroomError, TimeoutError):
    """Django's email backend, called where an event loop runs (an async view), commits on a
    thread of its own and waited for it longer than ``MAILROOM["ASYNC_SEND_TIMEOUT"]``.

    Whether the messages are queued is not known: that commit may still complete, behind a
    lock or a slow database. A message with an idempotency key can be sent again safely."""


class DeliveryError(MailroomError):
    """The transport could not deliver a message.

    Carries the SMTP reply where there was one: ``code`` (550), ``enhanced_status`` ("5.1.1"),
    ``server_text`` (the relay's words), ``recipient`` (for a refused RCPT), ``stage`` (where in
    the dialogue it came). ``refused`` maps each refused recipient to its own error when a
    message was refused for all of them. ``possibly_delivered`` marks silence after the final
    dot.
    """

    verdict: ClassVar[Verdict]

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        enhanced_status: str | None = None,
        server_text: str | None = None,
        recipient: str | None = None,
        stage: SMTPStage | None = None,
        refused: Mapping[str, DeliveryError] | None = None,
        possibly_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.possibly_delivered = possibly_delivered
        """The connection failed after the final dot, before the reply: the relay may have
        accepted the message. A retry may deliver it twice (RFC 5321 §4.1.1.4 on the risk)."""
        self.code = code
        self.enhanced_status = enhanced_status
        self.server_text = server_text
        self.recipient = recipient
        self.stage = stage
        self.refused: Mapping[str, DeliveryError] = refused or {}

    @property
    def reply(self) -> str | None:
        """The reply as the relay gave it: ``550 5.1.1 no such user``."""
        if self.code is None:
            return None
        return format_reply(self.code, self.enhanced_status, self.server_text)


class TransientError(DeliveryError):
    verdict = Verdict.TRANSIENT


class DeliveryTimeoutError(TransientError, TimeoutError):
    """The relay did not answer within ``EMAIL_TIMEOUT``."""


class ConnectionLostError(TransientError, ConnectionError):
    """The relay closed the connection, or the network dropped it."""


class PermanentError(DeliveryError):
    verdict = Verdict.PERMANENT


class SMTPUTF8UnsupportedError(PermanentError):
    """An address has a non-ASCII local part and the relay does not offer SMTPUTF8 (RFC 6531)."""


class TransportSetupError(DeliveryError):
    """The relay refused our setup, or cannot be reached with it: no message is at fault."""

    verdict = Verdict.CONFIGURATION


ConfigurationError = TransportSetupError
"""The former name of :class:`TransportSetupError`, kept for this release."""


class RelayUnreachableError(TransportSetupError, ConnectionError):
    """No connection: refused, unknown host, no route."""


class TLSError(TransportSetupError):
    """TLS could not be set up: handshake, certificate, or a STARTTLS/SSL mismatch."""


class AuthenticationError(TransportSetupError):
    """The relay refused our user name and password, or wants authentication we did not give."""


class AuthNotOfferedError(AuthenticationError):
    """A user name is set but the relay offers no AUTH on this connection, so no login was
    tried; many relays offer it only after STARTTLS (RFC 4954 §4 lets them)."""


class SenderRefusedError(TransportSetupError):
    """The relay refused our sender address: at MAIL FROM, or (Postfix's default
    ``smtpd_delay_reject = yes``) at RCPT TO, as "Sender address rejected"."""


class HeloRefusedError(TransportSetupError):
    """The relay refused the host name we gave in EHLO (often at RCPT TO, as Postfix's
    "Helo command rejected: need fully-qualified hostname")."""


class RelayDeniedError(TransportSetupError):
    """The relay will not pass mail on for us: "Relay access denied" (we neither logged in
    nor connect from a network it trusts) or "Client host rejected"."""


# -- the outbox's operations ------------------------------------------------------------


class NothingSelectedError(MailroomError, ValueError):
    """A state change was asked for with no ids and no filter, and not for ``everything``.

    Refused so that a forgotten option cannot retry or cancel the whole outbox.
    """


class CampaignError(MailroomError, ValueError):
    """An audience or contact that cannot be found (``field`` names it: ``audience``,
    ``as_contact``), or an action the campaign's state does not allow (``field`` is None)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CampaignNotFoundError(CampaignError):
    """No campaign has the id given (an API answers it 404, a state error 409)."""

    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"there is no campaign {campaign_id}")
        self.campaign_id = campaign_id


class InvalidCursorError(MailroomError, ValueError):
    """A page cursor of the message search that the search did not make: edited, cut short,
    or from somewhere else. The caller answers it as a bad request, never as a crash."""

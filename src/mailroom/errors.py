"""Every exception Mailroom raises, and the classification of SMTP replies.

The tree::

    MailroomError
    ├── SettingsError (ValueError)          a setting is wrong; names the setting
    ├── MessageError (ValueError)           the message cannot be built as given; names the field
    │   ├── HeaderInjectionError            CR, LF or NUL in a header field
    │   ├── InvalidAddressError             not an address we can send to
    │   ├── MessageTooLargeError            over EMAIL_MAX_MESSAGE_SIZE
    │   ├── TemplateError                   a template is missing, unsafe or fails to render
    │   └── IdempotencyConflictError        an idempotency key reused for different content
    ├── NotificationError (ValueError)      an unknown or badly declared notification type
    ├── InvalidTokenError (ValueError)      an unsubscribe token that is forged, altered or old
    ├── DatabaseError                       the outbox database cannot be used; names DATABASE_URL
    │   ├── DatabaseUnreachableError (ConnectionError)
    │   │                                   no server there, no such database, login refused
    │   ├── DatabaseDriverMissingError      the Python driver for DATABASE_URL's scheme is missing
    │   ├── DatabaseFileError               the SQLite file is missing, read-only, a directory or
    │   │                                   not a database (corrupt or truncated)
    │   ├── DatabaseFullError               the disk (or the database's size limit) is full
    │   └── DatabaseBusyError               a statement waited too long for another session's lock
    ├── NothingSelectedError (ValueError)   a retry or cancel given no ids and no filter
    └── DeliveryError                       the transport could not deliver; carries the reply
        ├── TransientError                  try again later (4xx, dropped connection, timeout)
        │   ├── DeliveryTimeoutError (TimeoutError)
        │   └── ConnectionLostError (ConnectionError)
        ├── PermanentError                  this message or recipient will never be accepted
        │   └── SMTPUTF8UnsupportedError    an address needs SMTPUTF8, the relay lacks it
        └── ConfigurationError              our own setup is wrong; fix settings, don't fail mail
            ├── RelayUnreachableError (ConnectionError)   refused connection, unknown host
            ├── TLSError                    handshake, certificate or STARTTLS mismatch
            ├── AuthenticationError         the relay refused our credentials
            │   └── AuthNotOfferedError     we have credentials, the relay offers no AUTH
            ├── SenderRefusedError          the relay will not send from our address
            ├── HeloRefusedError            the relay refused the name we gave in EHLO
            └── RelayDeniedError            the relay will not pass mail on for this client

A reply is classified from its numeric code and RFC 3463 enhanced status code together with the
point of the SMTP dialogue where it came (:class:`SMTPStage`) — never from which client-library
exception carried it. One exception needs the reply's text as well: Postfix's refusals of our
sender, our EHLO name and our client at the RCPT stage (see :func:`refused_for_our_setup`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "AuthNotOfferedError",
    "AuthenticationError",
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
    "HeaderInjectionError",
    "HeloRefusedError",
    "IdempotencyConflictError",
    "InvalidAddressError",
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
    "SenderRefusedError",
    "SettingsError",
    "TLSError",
    "TemplateError",
    "TransientError",
    "Verdict",
    "classify_reply",
    "error_from_reply",
    "refused_for_our_setup",
    "split_enhanced_status",
]


class Verdict(StrEnum):
    """What a delivery failure means for the message."""

    TRANSIENT = "transient"
    """Try again later: the relay is busy, the mailbox is full for now, the line dropped."""
    PERMANENT = "permanent"
    """This message or recipient will never be accepted; retrying cannot help."""
    CONFIGURATION = "configuration"
    """Our own setup is wrong (password, TLS, sender address); no message is at fault."""


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


class NotificationError(MailroomError, ValueError):
    """An unknown notification type, or one declared inconsistently."""


class InvalidTokenError(MailroomError, ValueError):
    """An unsubscribe or preferences token that is not valid.

    The message is the same whatever was wrong (altered, expired, for another recipient,
    not a token at all), so the answer tells a forger nothing.
    """

    def __init__(self) -> None:
        super().__init__("this link is not valid or has expired")


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
        parts = [str(self.code), self.enhanced_status, self.server_text]
        return " ".join(p for p in parts if p)


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


class ConfigurationError(DeliveryError):
    verdict = Verdict.CONFIGURATION


class RelayUnreachableError(ConfigurationError, ConnectionError):
    """No connection: refused, unknown host, no route."""


class TLSError(ConfigurationError):
    """TLS could not be set up: handshake, certificate, or a STARTTLS/SSL mismatch."""


class AuthenticationError(ConfigurationError):
    """The relay refused our user name and password, or wants authentication we did not give."""


class AuthNotOfferedError(AuthenticationError):
    """A user name is set but the relay offers no AUTH on this connection, so no login was
    tried; many relays offer it only after STARTTLS (RFC 4954 §4 lets them)."""


class SenderRefusedError(ConfigurationError):
    """The relay refused our sender address: at MAIL FROM, or (Postfix's default
    ``smtpd_delay_reject = yes``) at RCPT TO, as "Sender address rejected"."""


class HeloRefusedError(ConfigurationError):
    """The relay refused the host name we gave in EHLO (often at RCPT TO, as Postfix's
    "Helo command rejected: need fully-qualified hostname")."""


class RelayDeniedError(ConfigurationError):
    """The relay will not pass mail on for us: "Relay access denied" (we neither logged in
    nor connect from a network it trusts) or "Client host rejected"."""


# -- the outbox's operations ------------------------------------------------------------


class NothingSelectedError(MailroomError, ValueError):
    """A state change was asked for with no ids and no filter, and not for ``everything``.

    Refused so that a forgotten option cannot retry or cancel the whole outbox.
    """


_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")

# RFC 3463 §3.8 and the IANA registry of enhanced status codes: X.7.y subjects about *us* —
# authentication (8 invalid credentials; 9 mechanism too weak; 10, 11 encryption needed;
# 13 account disabled; 14 trust relationship) and our domain's SPF/DKIM/DMARC standing
# (20-27). 5.7.0 ("other security") and 5.7.1 are left out: at RCPT or DATA providers use them
# for "this recipient or content is not accepted"; 530 5.7.0 "authentication required" is
# caught by its reply code.
_ABOUT_US_7 = frozenset({8, 9, 10, 11, 13, 14, 20, 21, 22, 23, 24, 25, 26, 27})


# Postfix's restrictions on the client, the HELO name and the sender are by default reported
# at RCPT TO (smtpd_delay_reject = yes), each reply text saying which restriction refused:
#   553 5.7.1 <app@example.com>: Sender address rejected: not owned by user
#   504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname
#   554 5.7.1 <ada@example.org>: Relay access denied   (454 4.7.1 with defer_unauth_destination)
#   554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied
# The numbers alone cannot tell these from a refused recipient: Postfix gives 554 5.7.1 for
# "Recipient address rejected: Access denied" too, 504 5.5.2 for a recipient that is not fully
# qualified, and providers use 550/553/554 5.7.1 for "this recipient does not take your mail".
# Only the text says the refusal is about us, so these patterns (Postfix's fixed wording,
# "<address>: Class rejected: reason", smtpd_check.c) are matched, together with a negative
# reply code and, when given, an enhanced status of the subjects Postfix uses for them
# (X.1 addressing, X.5 protocol, X.7 security/policy). They apply at 4yz as well: Postfix
# answers 450/454 when the restriction depends on DNS or defers unauthorised relaying, and a
# pause of the stream is itself a retry that uses up no attempt, so nothing is lost by it.
_OUR_SETUP_REFUSED: tuple[tuple[re.Pattern[str], type[ConfigurationError]], ...] = tuple(
    (re.compile(rf"^(?:<[^<>]*>:\s*)?{phrase}", re.IGNORECASE), cls)
    for phrase, cls in (
        (r"Sender address rejected\b", SenderRefusedError),
        (r"Helo command rejected\b", HeloRefusedError),
        (r"Relay access denied\b", RelayDeniedError),
        (r"Client host rejected\b", RelayDeniedError),
    )
)
_OUR_SETUP_SUBJECTS = frozenset({1, 5, 7})


def refused_for_our_setup(
    code: int, enhanced_status: str | None, server_text: str
) -> type[ConfigurationError] | None:
    """The configuration error a negative reply reports in Postfix's words, or ``None``."""
    if not 400 <= code < 600:
        return None
    if enhanced_status is not None:
        klass, subject, _ = (int(part) for part in enhanced_status.split("."))
        if klass != code // 100 or subject not in _OUR_SETUP_SUBJECTS:
            return None
    for pattern, cls in _OUR_SETUP_REFUSED:
        if pattern.match(server_text):
            return cls
    return None


def split_enhanced_status(text: str) -> tuple[str | None, str]:
    """Split ``"5.1.1 no such user"`` into ``("5.1.1", "no such user")`` (RFC 3463 §2)."""
    match = _ENHANCED.match(text)
    if not match:
        return None, text.strip()
    return ".".join(match.groups()), text[match.end() :].strip()


def classify_reply(code: int, enhanced_status: str | None, stage: SMTPStage) -> Verdict:
    """Decide what a negative SMTP reply means, from its numbers and where it came.

    4yz is transient everywhere (RFC 5321 §4.2.1). A 5yz is a *configuration* problem when it
    concerns us rather than the message: before MAIL (greeting, EHLO, STARTTLS, AUTH), at MAIL
    (our sender), or with an enhanced status about authentication or our domain's standing.
    Anything else 5yz is permanent for that message or recipient.
    """
    if 400 <= code < 500:
        return Verdict.TRANSIENT
    if enhanced_status is not None:
        _, subject, detail = (int(part) for part in enhanced_status.split("."))
        if subject == 7 and detail in _ABOUT_US_7:
            return Verdict.CONFIGURATION
        if subject == 3 and detail == 4:  # X.3.4 message too big for the system
            return Verdict.PERMANENT
    if code == 530 or code in (534, 535, 538):  # RFC 4954 §6: authentication required / failed
        return Verdict.CONFIGURATION
    if stage in (SMTPStage.CONNECT, SMTPStage.EHLO, SMTPStage.STARTTLS, SMTPStage.AUTH):
        return Verdict.CONFIGURATION
    if stage is SMTPStage.MAIL:
        # 552 at MAIL is the SIZE= parameter refused (RFC 1870 §6): the message is too big.
        return Verdict.PERMANENT if code == 552 else Verdict.CONFIGURATION
    return Verdict.PERMANENT


def error_from_reply(
    code: int,
    text: str,
    stage: SMTPStage,
    *,
    recipient: str | None = None,
) -> DeliveryError:
    """Build the right :class:`DeliveryError` for a negative reply.

    By :func:`classify_reply`, except for the refusals of our own setup that only the reply's
    text tells apart (:func:`refused_for_our_setup`): those are configuration errors at any
    stage and code, a 4yz included.
    """
    enhanced, server_text = split_enhanced_status(text)
    ours = refused_for_our_setup(code, enhanced, server_text)
    verdict = Verdict.CONFIGURATION if ours else classify_reply(code, enhanced, stage)
    cls: type[DeliveryError]
    if ours is not None:
        cls = ours
    elif verdict is Verdict.TRANSIENT:
        cls = TransientError
    elif verdict is Verdict.PERMANENT:
        cls = PermanentError
    elif stage is SMTPStage.AUTH or code in (530, 534, 535, 538):
        cls = AuthenticationError
    elif stage is SMTPStage.STARTTLS:
        cls = TLSError
    elif stage is SMTPStage.MAIL:
        cls = SenderRefusedError
    else:
        cls = ConfigurationError
    reply = " ".join(str(p) for p in (code, enhanced, server_text) if p)
    where = f" for {recipient}" if recipient else ""
    if ours is not None and stage is SMTPStage.RCPT:
        where += " because of our own setup, not the recipient"
    return cls(
        f"{stage.upper()} refused{where}: {reply}",
        code=code,
        enhanced_status=enhanced,
        server_text=server_text,
        recipient=recipient,
        stage=stage,
    )

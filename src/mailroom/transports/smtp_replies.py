"""SMTP replies: their named codes, their parts, and what a negative one means (RFC 3463).

A reply is classified from its numeric code and RFC 3463 enhanced status code together with the
point of the SMTP dialogue where it came (:class:`~mailroom.errors.SMTPStage`) — never from
which client-library exception carried it. One exception needs the reply's text as well:
Postfix's refusals of our sender, our EHLO name and our client at the RCPT stage (see
:func:`refused_for_our_setup`).

:func:`format_reply` is the one way a reply is written out; it is defined in
:mod:`mailroom.errors` (``DeliveryError.reply`` uses it, and that module imports nothing above
it) and re-exported here, where callers look for it.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NamedTuple

from mailroom.errors import (
    AuthenticationError,
    DeliveryError,
    HeloRefusedError,
    PermanentError,
    RelayDeniedError,
    SenderRefusedError,
    SMTPStage,
    TLSError,
    TransientError,
    TransportSetupError,
    Verdict,
    format_reply,
)

__all__ = [
    "Reply",
    "ReplyCode",
    "classify_reply",
    "error_from_reply",
    "format_reply",
    "refused_for_our_setup",
    "split_enhanced_status",
]


class ReplyCode(IntEnum):
    """The reply codes Mailroom acts on by number (RFC 5321 §4.2.3, RFC 4954 §6, RFC 1870).

    A relay may answer with any code; these are the ones with a meaning of their own here."""

    COMPLETED = 250
    """Requested mail action okay, completed."""
    WILL_FORWARD = 251
    """User not local; will forward: accepted as 250."""
    START_INPUT = 354
    """Start mail input; end with <CRLF>.<CRLF>."""
    CLOSING = 421
    """Service not available, closing transmission channel (RFC 5321 §3.8)."""
    INSUFFICIENT_STORAGE = 452
    """Insufficient system storage, or (RFC 5321 §4.5.3.1.10) too many recipients."""
    AUTH_REQUIRED = 530
    """Authentication required (RFC 4954 §6)."""
    AUTH_TOO_WEAK = 534
    """Authentication mechanism is too weak (RFC 4954 §6)."""
    AUTH_FAILED = 535
    """Authentication credentials invalid (RFC 4954 §6)."""
    ENCRYPTION_REQUIRED = 538
    """Encryption required for the requested authentication mechanism (RFC 4954 §6)."""
    STORAGE_EXCEEDED = 552
    """Exceeded storage allocation: at MAIL, the SIZE= parameter refused (RFC 1870 §6); at
    RCPT, RFC 821's "too many recipients"."""


_AUTHENTICATION = frozenset(
    {
        ReplyCode.AUTH_REQUIRED,
        ReplyCode.AUTH_TOO_WEAK,
        ReplyCode.AUTH_FAILED,
        ReplyCode.ENCRYPTION_REQUIRED,
    }
)
"""RFC 4954 §6: authentication required, or refused: about our setup wherever it comes."""


class Reply(NamedTuple):
    """An SMTP reply in its parts: ``Reply(250, "2.0.0", "Ok: queued as 4BXq")``.

    ``str()`` gives it as the relay sent it, on one line (:func:`format_reply`)."""

    code: int
    enhanced_status: str | None
    text: str

    @classmethod
    def parse(cls, code: int, text: str) -> Reply:
        """A reply from its code and the text after it, the enhanced status split off."""
        enhanced, rest = split_enhanced_status(text)
        return cls(code, enhanced, rest)

    def __str__(self) -> str:
        return format_reply(self.code, self.enhanced_status, self.text)


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
_OUR_SETUP_REFUSED: tuple[tuple[re.Pattern[str], type[TransportSetupError]], ...] = tuple(
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
) -> type[TransportSetupError] | None:
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
    if code in _AUTHENTICATION:
        return Verdict.CONFIGURATION
    if stage in (SMTPStage.CONNECT, SMTPStage.EHLO, SMTPStage.STARTTLS, SMTPStage.AUTH):
        return Verdict.CONFIGURATION
    if stage is SMTPStage.MAIL:
        # 552 at MAIL is the SIZE= parameter refused (RFC 1870 §6): the message is too big.
        if code == ReplyCode.STORAGE_EXCEEDED:
            return Verdict.PERMANENT
        return Verdict.CONFIGURATION
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
    elif stage is SMTPStage.AUTH or code in _AUTHENTICATION:
        cls = AuthenticationError
    elif stage is SMTPStage.STARTTLS:
        cls = TLSError
    elif stage is SMTPStage.MAIL:
        cls = SenderRefusedError
    else:
        cls = TransportSetupError
    reply = format_reply(code, enhanced, server_text)
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

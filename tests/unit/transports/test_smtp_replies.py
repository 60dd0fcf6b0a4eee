"""SMTP replies: their parts, their named codes, the one formatter, and the classification of a
negative reply (RFC 3463 with the stage of the dialogue)."""

from __future__ import annotations

import pytest

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
)
from mailroom.transports.smtp_replies import (
    Reply,
    ReplyCode,
    classify_reply,
    error_from_reply,
    format_reply,
    split_enhanced_status,
)

T = Verdict.TRANSIENT
P = Verdict.PERMANENT
C = Verdict.CONFIGURATION
CONNECT, EHLO, STARTTLS, AUTH = (
    SMTPStage.CONNECT,
    SMTPStage.EHLO,
    SMTPStage.STARTTLS,
    SMTPStage.AUTH,
)
MAIL, RCPT, DATA = SMTPStage.MAIL, SMTPStage.RCPT, SMTPStage.DATA

# --- format_reply, Reply and ReplyCode ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "line"),
    [
        (550, "5.1.1", "no such user", "550 5.1.1 no such user"),
        (554, None, "Transaction failed", "554 Transaction failed"),
        (421, None, "", "421"),
        (421, None, None, "421"),
        (None, None, "suppressed: unsubscribed", "suppressed: unsubscribed"),
        (None, None, None, ""),
        (ReplyCode.COMPLETED, "2.0.0", "Ok", "250 2.0.0 Ok"),
    ],
)
def test_format_reply(code: int | None, enhanced: str | None, text: str | None, line: str) -> None:
    assert format_reply(code, enhanced, text) == line


def test_reply_parts_and_line() -> None:
    reply = Reply.parse(250, "2.0.0 Ok: queued as 4BXq")
    assert reply == Reply(250, "2.0.0", "Ok: queued as 4BXq")
    assert str(reply) == "250 2.0.0 Ok: queued as 4BXq"
    assert Reply.parse(250, "  Ok  ") == Reply(250, None, "Ok")
    assert str(Reply.parse(354, "")) == "354"


def test_reply_codes_are_the_numbers() -> None:
    assert ReplyCode.COMPLETED.value == 250
    assert ReplyCode(421) is ReplyCode.CLOSING
    assert Reply.parse(250, "Ok").code == ReplyCode.COMPLETED
    assert {ReplyCode.COMPLETED, ReplyCode.WILL_FORWARD} == {250, 251}
    assert str(Reply(ReplyCode.START_INPUT, None, "go ahead")) == "354 go ahead"
    # Named codes classify as their numbers do.
    assert classify_reply(ReplyCode.AUTH_FAILED, None, SMTPStage.AUTH) is C
    assert classify_reply(ReplyCode.STORAGE_EXCEEDED, None, SMTPStage.MAIL) is P
    assert classify_reply(ReplyCode.CLOSING, None, SMTPStage.MAIL) is T


# --- split_enhanced_status -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.1.1 no such user", ("5.1.1", "no such user")),
        ("4.7.0 TLS not available", ("4.7.0", "TLS not available")),
        ("2.0.0 OK queued as 1234", ("2.0.0", "OK queued as 1234")),
        ("5.7.26 unauthenticated mail", ("5.7.26", "unauthenticated mail")),
        ("5.123.456 three digits each", ("5.123.456", "three digits each")),
        ("5.1.1", ("5.1.1", "")),
        ("5.1.1   spaced out  ", ("5.1.1", "spaced out")),
        ("5.1.1\tafter a tab", ("5.1.1", "after a tab")),
        ("no such user", (None, "no such user")),
        ("  no such user  ", (None, "no such user")),
        ("", (None, "")),
        # Class must be 2, 4 or 5 (RFC 3463 §3.1).
        ("3.1.1 not a class", (None, "3.1.1 not a class")),
        ("1.0.0 nope", (None, "1.0.0 nope")),
        # Subject and detail are one to three digits.
        ("5.1234.1 too long", (None, "5.1234.1 too long")),
        ("5.1.1234 too long", (None, "5.1.1234 too long")),
        ("5.1 too short", (None, "5.1 too short")),
        # The code must stand alone, not run into the text.
        ("5.1.1no space", (None, "5.1.1no space")),
        ("5.1.1.2 four parts", (None, "5.1.1.2 four parts")),
        # Only at the start.
        ("user unknown 5.1.1", (None, "user unknown 5.1.1")),
    ],
)
def test_split_enhanced_status(text: str, expected: tuple[str | None, str]) -> None:
    assert split_enhanced_status(text) == expected


# --- classify_reply ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [421, 450, 451, 452, 454])
@pytest.mark.parametrize("stage", list(SMTPStage))
@pytest.mark.parametrize("enhanced", [None, "4.7.0", "4.2.2", "4.3.0"])
def test_4xx_is_transient_at_every_stage(code: int, stage: SMTPStage, enhanced: str | None) -> None:
    assert classify_reply(code, enhanced, stage) is T


# Each row: a stage, a verdict, and the replies ("code" or "code enhanced-status") given it there.
CLASSIFIED = [
    # A refused recipient or message: permanent.
    (RCPT, P, "550 5.1.1 | 550 | 551 5.1.6 | 553 5.1.3 | 552 5.2.2"),
    (DATA, P, "554 | 554 5.6.0 | 550 5.7.1"),
    # Too big: permanent wherever it comes (RFC 1870 §6 at MAIL; X.3.4 anywhere).
    (MAIL, P, "552 | 552 5.3.4"),
    (DATA, P, "552 5.3.4 | 552"),
    (RCPT, P, "554 5.3.4"),
    # Authentication (RFC 4954 §6): configuration.
    (AUTH, C, "535 5.7.8 | 535 | 534 5.7.9 | 538 5.7.11"),
    (RCPT, C, "530 5.7.0 | 530"),
    (MAIL, C, "530 5.7.0"),
    (DATA, C, "530 5.7.0 | 535"),
    # 5.7.0 with another code is "not accepted" about the recipient or the content.
    (RCPT, P, "550 5.7.0"),
    (DATA, P, "554 5.7.0"),
    # Our sender refused at MAIL: configuration.
    (MAIL, C, "550 5.7.1 | 550 | 553 5.1.8 | 554"),
    # 5.7.1 at RCPT is about the recipient: permanent.
    (RCPT, P, "550 5.7.1 | 554 5.7.1"),
    # Our domain's standing (SPF/DKIM/DMARC, X.7.20-27): configuration, even at DATA.
    (DATA, C, "550 5.7.26 | 550 5.7.20 | 550 5.7.23 | 550 5.7.27"),
    (RCPT, C, "550 5.7.26 | 550 5.7.25"),
    # X.7.y about authentication or encryption: configuration.
    (DATA, C, "554 5.7.9 | 554 5.7.11 | 554 5.7.14"),
    (RCPT, C, "554 5.7.10 | 554 5.7.13"),
    # X.7.y not about us: permanent at RCPT/DATA.
    (RCPT, P, "550 5.7.2 | 554 5.7.12"),
    (DATA, P, "550 5.7.28"),
    # Before MAIL, any 5yz is about our setup.
    (CONNECT, C, "554 | 554 5.7.1 | 550 5.1.1"),
    (EHLO, C, "501 5.5.4 | 502"),
    (STARTTLS, C, "502 5.5.1 | 554 5.7.0"),
    (AUTH, C, "504 5.5.4"),
]


@pytest.mark.parametrize(
    ("code", "enhanced", "stage", "verdict"),
    [
        pytest.param(int(code), enhanced or None, stage, verdict, id=f"{stage}-{reply}")
        for stage, verdict, replies in CLASSIFIED
        for reply in replies.split(" | ")
        for code, _, enhanced in [reply.partition(" ")]
    ],
)
def test_classify_reply(
    code: int, enhanced: str | None, stage: SMTPStage, verdict: Verdict
) -> None:
    assert classify_reply(code, enhanced, stage) is verdict


# --- error_from_reply ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "stage", "cls"),
    [
        (535, "5.7.8 Authentication credentials invalid", SMTPStage.AUTH, AuthenticationError),
        (504, "5.5.4 Unrecognized authentication type", SMTPStage.AUTH, AuthenticationError),
        (530, "5.7.0 Authentication required", SMTPStage.MAIL, AuthenticationError),
        (530, "5.7.0 Authentication required", SMTPStage.RCPT, AuthenticationError),
        (550, "5.7.1 Sender address rejected", SMTPStage.MAIL, SenderRefusedError),
        (553, "5.1.8 Domain of sender address does not exist", SMTPStage.MAIL, SenderRefusedError),
        (554, "5.7.0 TLS not available", SMTPStage.STARTTLS, TLSError),
        (502, "5.5.1 STARTTLS not supported", SMTPStage.STARTTLS, TLSError),
        (550, "5.1.1 No such user", SMTPStage.RCPT, PermanentError),
        (550, "5.7.1 Recipient refuses your mail", SMTPStage.RCPT, PermanentError),
        (552, "5.3.4 Message too big", SMTPStage.DATA, PermanentError),
        (552, "Message size exceeds limit", SMTPStage.MAIL, PermanentError),
        (554, "Transaction failed", SMTPStage.DATA, PermanentError),
        (421, "4.7.0 Try again later", SMTPStage.CONNECT, TransientError),
        (450, "4.2.1 Mailbox busy", SMTPStage.RCPT, TransientError),
        (451, "4.3.0 Local error", SMTPStage.DATA, TransientError),
        (452, "4.5.3 Too many recipients", SMTPStage.RCPT, TransientError),
        (
            454,
            "4.7.0 TLS not available due to temporary reason",
            SMTPStage.STARTTLS,
            TransientError,
        ),
        (454, "4.7.0 Temporary authentication failure", SMTPStage.AUTH, TransientError),
        (550, "5.7.26 Unauthenticated email is not accepted", SMTPStage.DATA, TransportSetupError),
        (554, "No SMTP service here", SMTPStage.CONNECT, TransportSetupError),
        (501, "5.5.4 Invalid domain name", SMTPStage.EHLO, TransportSetupError),
    ],
)
def test_error_from_reply_class(
    code: int, text: str, stage: SMTPStage, cls: type[DeliveryError]
) -> None:
    error = error_from_reply(code, text, stage)
    assert type(error) is cls
    assert error.verdict is classify_reply(code, split_enhanced_status(text)[0], stage)


# Postfix's refusals of the client, the HELO name and the sender come at RCPT by default
# (smtpd_delay_reject = yes): about us, though the codes match a refused recipient's.
@pytest.mark.parametrize(
    ("code", "text", "stage", "cls"),
    [
        (
            553,
            "5.7.1 <app@example.com>: Sender address rejected: not owned by user",
            SMTPStage.RCPT,
            SenderRefusedError,
        ),
        (
            504,
            "5.5.2 <app>: Sender address rejected: need fully-qualified address",
            SMTPStage.RCPT,
            SenderRefusedError,
        ),
        (
            450,
            "4.1.8 <app@nowhere.example>: Sender address rejected: Domain not found",
            SMTPStage.RCPT,
            SenderRefusedError,
        ),
        (
            504,
            "5.5.2 <box>: Helo command rejected: need fully-qualified hostname",
            SMTPStage.RCPT,
            HeloRefusedError,
        ),
        (
            504,
            "5.5.2 <box>: Helo command rejected: need fully-qualified hostname",
            SMTPStage.EHLO,
            HeloRefusedError,
        ),
        (554, "5.7.1 <ada@example.org>: Relay access denied", SMTPStage.RCPT, RelayDeniedError),
        # Postfix's default since 2.10: defer_unauth_destination.
        (454, "4.7.1 <ada@example.org>: Relay access denied", SMTPStage.RCPT, RelayDeniedError),
        (
            554,
            "5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied",
            SMTPStage.RCPT,
            RelayDeniedError,
        ),
        (
            450,
            "4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]",
            SMTPStage.RCPT,
            RelayDeniedError,
        ),
        (554, "Relay access denied", SMTPStage.RCPT, RelayDeniedError),  # no enhanced status
        # The same codes about the recipient stay the recipient's.
        (
            554,
            "5.7.1 <ada@example.org>: Recipient address rejected: Access denied",
            SMTPStage.RCPT,
            PermanentError,
        ),
        (
            504,
            "5.5.2 <ada>: Recipient address rejected: need fully-qualified address",
            SMTPStage.RCPT,
            PermanentError,
        ),
        (553, "5.7.1 Rejected: relay access denied for this list", SMTPStage.RCPT, PermanentError),
        # A recipient address cannot smuggle the words in: they must follow the <...>: prefix.
        (
            550,
            '5.1.1 <"Relay access denied"@example.org>: Recipient address rejected',
            SMTPStage.RCPT,
            PermanentError,
        ),
        # An enhanced status of another subject (X.2 mailbox) is not one of these.
        (552, "5.2.2 <x>: Sender address rejected: mailbox full", SMTPStage.RCPT, PermanentError),
    ],
)
def test_our_setup_refused_at_rcpt(
    code: int, text: str, stage: SMTPStage, cls: type[DeliveryError]
) -> None:
    error = error_from_reply(code, text, stage, recipient="ada@example.org")
    assert type(error) is cls
    if cls is not PermanentError:
        assert error.verdict is Verdict.CONFIGURATION
        if stage is SMTPStage.RCPT:
            assert "because of our own setup, not the recipient" in str(error)
    assert error.code == code


def test_error_from_reply_fields() -> None:
    error = error_from_reply(
        550, "5.1.1 No such user here", SMTPStage.RCPT, recipient="x@y.example"
    )
    assert isinstance(error, PermanentError)
    assert error.verdict is Verdict.PERMANENT
    assert error.code == 550
    assert error.enhanced_status == "5.1.1"
    assert error.server_text == "No such user here"
    assert error.recipient == "x@y.example"
    assert error.stage is SMTPStage.RCPT
    assert error.refused == {}
    assert error.reply == "550 5.1.1 No such user here"
    assert str(error) == "RCPT refused for x@y.example: 550 5.1.1 No such user here"


def test_error_from_reply_without_enhanced_status_or_recipient() -> None:
    error = error_from_reply(554, "  Transaction failed  ", SMTPStage.DATA)
    assert error.enhanced_status is None
    assert error.server_text == "Transaction failed"
    assert error.recipient is None
    assert error.reply == "554 Transaction failed"
    assert str(error) == "DATA refused: 554 Transaction failed"


def test_error_from_reply_with_empty_text() -> None:
    error = error_from_reply(421, "", SMTPStage.CONNECT)
    assert isinstance(error, TransientError)
    assert error.server_text == ""
    assert error.reply == "421"
    assert str(error) == "CONNECT refused: 421"


def test_error_from_reply_authentication_fields() -> None:
    error = error_from_reply(535, "5.7.8 Username and Password not accepted", SMTPStage.AUTH)
    assert isinstance(error, AuthenticationError)
    assert isinstance(error, TransportSetupError)
    assert error.verdict is Verdict.CONFIGURATION
    assert error.code == 535
    assert error.enhanced_status == "5.7.8"
    assert error.stage is SMTPStage.AUTH
    assert error.reply == "535 5.7.8 Username and Password not accepted"

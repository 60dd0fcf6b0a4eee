"""The exception tree and the classification of SMTP replies."""

from __future__ import annotations

import importlib

import pytest

import mailroom
from mailroom.errors import (
    AuthenticationError,
    AuthNotOfferedError,
    ConfigurationError,
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    HeaderInjectionError,
    HeloRefusedError,
    InvalidAddressError,
    MailroomError,
    MessageError,
    MessageTooLargeError,
    PermanentError,
    RelayDeniedError,
    RelayUnreachableError,
    SenderRefusedError,
    SettingsError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TLSError,
    TransientError,
    Verdict,
    classify_reply,
    error_from_reply,
    split_enhanced_status,
)

T = Verdict.TRANSIENT
P = Verdict.PERMANENT
C = Verdict.CONFIGURATION

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


@pytest.mark.parametrize(
    ("code", "enhanced", "stage", "verdict"),
    [
        # A refused recipient or message: permanent.
        (550, "5.1.1", SMTPStage.RCPT, P),
        (550, None, SMTPStage.RCPT, P),
        (551, "5.1.6", SMTPStage.RCPT, P),
        (553, "5.1.3", SMTPStage.RCPT, P),
        (552, "5.2.2", SMTPStage.RCPT, P),
        (554, None, SMTPStage.DATA, P),
        (554, "5.6.0", SMTPStage.DATA, P),
        (550, "5.7.1", SMTPStage.DATA, P),
        # Too big: permanent wherever it comes (RFC 1870 §6 at MAIL; X.3.4 anywhere).
        (552, None, SMTPStage.MAIL, P),
        (552, "5.3.4", SMTPStage.MAIL, P),
        (552, "5.3.4", SMTPStage.DATA, P),
        (552, None, SMTPStage.DATA, P),
        (554, "5.3.4", SMTPStage.RCPT, P),
        # Authentication (RFC 4954 §6): configuration.
        (535, "5.7.8", SMTPStage.AUTH, C),
        (535, None, SMTPStage.AUTH, C),
        (534, "5.7.9", SMTPStage.AUTH, C),
        (538, "5.7.11", SMTPStage.AUTH, C),
        (530, "5.7.0", SMTPStage.RCPT, C),
        (530, "5.7.0", SMTPStage.MAIL, C),
        (530, "5.7.0", SMTPStage.DATA, C),
        # 5.7.0 with another code is "not accepted" about the recipient or the content.
        (550, "5.7.0", SMTPStage.RCPT, P),
        (554, "5.7.0", SMTPStage.DATA, P),
        (530, None, SMTPStage.RCPT, C),
        (535, None, SMTPStage.DATA, C),
        # Our sender refused at MAIL: configuration.
        (550, "5.7.1", SMTPStage.MAIL, C),
        (550, None, SMTPStage.MAIL, C),
        (553, "5.1.8", SMTPStage.MAIL, C),
        (554, None, SMTPStage.MAIL, C),
        # 5.7.1 at RCPT is about the recipient: permanent.
        (550, "5.7.1", SMTPStage.RCPT, P),
        (554, "5.7.1", SMTPStage.RCPT, P),
        # Our domain's standing (SPF/DKIM/DMARC, X.7.20-27): configuration, even at DATA.
        (550, "5.7.26", SMTPStage.DATA, C),
        (550, "5.7.26", SMTPStage.RCPT, C),
        (550, "5.7.20", SMTPStage.DATA, C),
        (550, "5.7.23", SMTPStage.DATA, C),
        (550, "5.7.27", SMTPStage.DATA, C),
        (550, "5.7.25", SMTPStage.RCPT, C),
        # X.7.y about authentication or encryption: configuration.
        (554, "5.7.9", SMTPStage.DATA, C),
        (554, "5.7.10", SMTPStage.RCPT, C),
        (554, "5.7.11", SMTPStage.DATA, C),
        (554, "5.7.13", SMTPStage.RCPT, C),
        (554, "5.7.14", SMTPStage.DATA, C),
        # X.7.y not about us: permanent at RCPT/DATA.
        (550, "5.7.2", SMTPStage.RCPT, P),
        (550, "5.7.28", SMTPStage.DATA, P),
        (554, "5.7.12", SMTPStage.RCPT, P),
        # Before MAIL, any 5yz is about our setup.
        (554, None, SMTPStage.CONNECT, C),
        (554, "5.7.1", SMTPStage.CONNECT, C),
        (550, "5.1.1", SMTPStage.CONNECT, C),
        (501, "5.5.4", SMTPStage.EHLO, C),
        (502, None, SMTPStage.EHLO, C),
        (502, "5.5.1", SMTPStage.STARTTLS, C),
        (554, "5.7.0", SMTPStage.STARTTLS, C),
        (504, "5.5.4", SMTPStage.AUTH, C),
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
        (550, "5.7.26 Unauthenticated email is not accepted", SMTPStage.DATA, ConfigurationError),
        (554, "No SMTP service here", SMTPStage.CONNECT, ConfigurationError),
        (501, "5.5.4 Invalid domain name", SMTPStage.EHLO, ConfigurationError),
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
    assert isinstance(error, ConfigurationError)
    assert error.verdict is Verdict.CONFIGURATION
    assert error.code == 535
    assert error.enhanced_status == "5.7.8"
    assert error.stage is SMTPStage.AUTH
    assert error.reply == "535 5.7.8 Username and Password not accepted"


# --- DeliveryError itself ------------------------------------------------------------------


def test_delivery_error_without_a_reply() -> None:
    error = ConnectionLostError("the relay hung up")
    assert error.code is None
    assert error.reply is None
    assert error.enhanced_status is None
    assert error.server_text is None
    assert error.recipient is None
    assert error.stage is None
    assert error.refused == {}
    assert str(error) == "the relay hung up"


def test_delivery_error_reply_without_enhanced_status() -> None:
    error = PermanentError("x", code=550, server_text="nope")
    assert error.reply == "550 nope"


def test_delivery_error_carries_refused_recipients() -> None:
    a = error_from_reply(550, "5.1.1 no such user", SMTPStage.RCPT, recipient="a@x.example")
    b = error_from_reply(450, "4.2.1 busy", SMTPStage.RCPT, recipient="b@x.example")
    error = PermanentError("all recipients refused", refused={"a@x.example": a, "b@x.example": b})
    assert error.refused["a@x.example"] is a
    assert error.refused["b@x.example"].verdict is Verdict.TRANSIENT


# --- the tree ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (SettingsError, (MailroomError, ValueError)),
        (MessageError, (MailroomError, ValueError)),
        (HeaderInjectionError, (MessageError, ValueError)),
        (InvalidAddressError, (MessageError, ValueError)),
        (MessageTooLargeError, (MessageError, ValueError)),
        (DeliveryError, (MailroomError,)),
        (TransientError, (DeliveryError,)),
        (DeliveryTimeoutError, (TransientError, TimeoutError, OSError)),
        (ConnectionLostError, (TransientError, ConnectionError, OSError)),
        (PermanentError, (DeliveryError,)),
        (SMTPUTF8UnsupportedError, (PermanentError,)),
        (ConfigurationError, (DeliveryError,)),
        (RelayUnreachableError, (ConfigurationError, ConnectionError, OSError)),
        (TLSError, (ConfigurationError,)),
        (AuthenticationError, (ConfigurationError,)),
        (SenderRefusedError, (ConfigurationError,)),
        (AuthNotOfferedError, (AuthenticationError, ConfigurationError)),
        (HeloRefusedError, (ConfigurationError,)),
        (RelayDeniedError, (ConfigurationError,)),
    ],
)
def test_exception_tree(cls: type[Exception], bases: tuple[type[BaseException], ...]) -> None:
    assert issubclass(cls, MailroomError)
    for base in bases:
        assert issubclass(cls, base)


@pytest.mark.parametrize(
    ("cls", "verdict"),
    [
        (TransientError, Verdict.TRANSIENT),
        (DeliveryTimeoutError, Verdict.TRANSIENT),
        (ConnectionLostError, Verdict.TRANSIENT),
        (PermanentError, Verdict.PERMANENT),
        (SMTPUTF8UnsupportedError, Verdict.PERMANENT),
        (ConfigurationError, Verdict.CONFIGURATION),
        (RelayUnreachableError, Verdict.CONFIGURATION),
        (TLSError, Verdict.CONFIGURATION),
        (AuthenticationError, Verdict.CONFIGURATION),
        (SenderRefusedError, Verdict.CONFIGURATION),
    ],
)
def test_verdict_of_each_class(cls: type[DeliveryError], verdict: Verdict) -> None:
    assert cls.verdict is verdict


def test_branches_do_not_cross() -> None:
    assert not issubclass(TransientError, PermanentError | ConfigurationError)
    assert not issubclass(PermanentError, TransientError | ConfigurationError)
    assert not issubclass(ConfigurationError, TransientError | PermanentError)
    assert not issubclass(DeliveryError, ValueError)
    assert not issubclass(SettingsError, MessageError)


def test_stdlib_handlers_catch_mailroom_errors() -> None:
    with pytest.raises(TimeoutError):
        raise DeliveryTimeoutError("no answer in 30s")
    with pytest.raises(ConnectionError):
        raise ConnectionLostError("dropped")
    with pytest.raises(ConnectionError):
        raise RelayUnreachableError("connection refused")
    with pytest.raises(ValueError, match="EMAIL_PORT"):
        raise SettingsError("EMAIL_PORT", "not a port")


def test_settings_error_names_the_setting() -> None:
    error = SettingsError("EMAIL_PORT", "70000 is not a port number")
    assert error.setting == "EMAIL_PORT"
    assert str(error) == "EMAIL_PORT: 70000 is not a port number"


def test_message_error_names_the_field() -> None:
    error = HeaderInjectionError("Subject", "contains a line break")
    assert error.field == "Subject"
    assert str(error) == "Subject: contains a line break"


def test_vocabularies_are_str_enums() -> None:
    assert [v.value for v in Verdict] == ["transient", "permanent", "configuration"]
    assert Verdict("permanent") is Verdict.PERMANENT
    assert [s.value for s in SMTPStage] == [
        "connect",
        "ehlo",
        "starttls",
        "auth",
        "mail",
        "rcpt",
        "data",
    ]
    assert str(SMTPStage.RCPT) == "rcpt"


# --- the public API ------------------------------------------------------------------------


@pytest.mark.parametrize("module_name", ["mailroom", "mailroom.errors", "mailroom.config"])
def test_all_is_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names: list[str] = list(module.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(module, name), name


def test_public_names_importable_from_mailroom() -> None:
    namespace: dict[str, object] = {}
    exec(f"from mailroom import {', '.join(mailroom.__all__)}", namespace)  # noqa: S102
    for name in mailroom.__all__:
        assert namespace[name] is getattr(mailroom, name)

"""The exception tree, DeliveryError's fields, and the public names."""

from __future__ import annotations

import importlib

import pytest

import mailroom
from mailroom.errors import (
    AuthenticationError,
    AuthNotOfferedError,
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
    TransportSetupError,
    Verdict,
)
from mailroom.transports.smtp_replies import error_from_reply

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
        (TransportSetupError, (DeliveryError,)),
        (RelayUnreachableError, (TransportSetupError, ConnectionError, OSError)),
        (TLSError, (TransportSetupError,)),
        (AuthenticationError, (TransportSetupError,)),
        (SenderRefusedError, (TransportSetupError,)),
        (AuthNotOfferedError, (AuthenticationError, TransportSetupError)),
        (HeloRefusedError, (TransportSetupError,)),
        (RelayDeniedError, (TransportSetupError,)),
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
        (TransportSetupError, Verdict.CONFIGURATION),
        (RelayUnreachableError, Verdict.CONFIGURATION),
        (TLSError, Verdict.CONFIGURATION),
        (AuthenticationError, Verdict.CONFIGURATION),
        (SenderRefusedError, Verdict.CONFIGURATION),
    ],
)
def test_verdict_of_each_class(cls: type[DeliveryError], verdict: Verdict) -> None:
    assert cls.verdict is verdict


def test_configuration_error_is_the_former_name_of_transport_setup_error() -> None:
    """Kept for this release: ``except ConfigurationError`` still catches the relay's refusal."""
    assert mailroom.errors.ConfigurationError is TransportSetupError
    assert mailroom.ConfigurationError is TransportSetupError
    assert mailroom.TransportSetupError is TransportSetupError
    assert "ConfigurationError" in mailroom.__all__


def test_branches_do_not_cross() -> None:
    assert not issubclass(TransientError, PermanentError | TransportSetupError)
    assert not issubclass(PermanentError, TransientError | TransportSetupError)
    assert not issubclass(TransportSetupError, TransientError | PermanentError)
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

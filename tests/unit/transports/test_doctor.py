"""Advice for the refusals of our own setup, without a relay (the CLI tests make them real)."""

from __future__ import annotations

import pytest

from mailroom.config import load_settings
from mailroom.errors import AuthNotOfferedError, DeliveryError, SMTPStage
from mailroom.transports.doctor import diagnose, login_hidden
from mailroom.transports.smtp_replies import error_from_reply


def advice(error: DeliveryError, **environ: str) -> str:
    settings = load_settings(environ={"EMAIL_HOST": "relay.example.com", **environ})
    return diagnose(error, settings, sender_setting="DEFAULT_FROM_EMAIL")


NOT_OFFERED = AuthNotOfferedError("relay does not offer AUTH", stage=SMTPStage.AUTH)


def test_auth_not_offered_without_tls_says_to_turn_tls_on() -> None:
    text = advice(NOT_OFFERED, EMAIL_HOST_USER="ada")
    assert "login of ada was never tried" in text
    assert "Turn on EMAIL_USE_TLS" in text
    assert "refused the login" not in text


def test_auth_not_offered_over_tls_does_not_say_to_turn_tls_on() -> None:
    text = advice(NOT_OFFERED, EMAIL_HOST_USER="ada", EMAIL_USE_TLS="true")
    assert "even over TLS" in text
    assert "Turn on EMAIL_USE_TLS" not in text
    assert "EMAIL_HOST_USER empty" in text


def test_encryption_required_for_the_mechanism_is_about_tls_too() -> None:
    error = error_from_reply(538, "5.7.11 Encryption required", SMTPStage.AUTH)
    assert "Turn on EMAIL_USE_TLS" in advice(error, EMAIL_HOST_USER="ada")


def test_a_wrong_password_is_still_a_refused_login() -> None:
    error = error_from_reply(535, "5.7.8 Authentication credentials invalid", SMTPStage.AUTH)
    assert "refused the login of ada" in advice(error, EMAIL_HOST_USER="ada")


@pytest.mark.parametrize(
    ("reply", "expected", "unexpected"),
    [
        (
            "504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname",
            "Set EMAIL_LOCAL_HOSTNAME",
            "EMAIL_HOST_USER",
        ),
        (
            "553 5.7.1 <app@example.com>: Sender address rejected: not owned by user",
            "set DEFAULT_FROM_EMAIL to an address the relay accepts",
            "EMAIL_LOCAL_HOSTNAME",
        ),
        (
            "554 5.7.1 <ada@example.org>: Relay access denied",
            "set EMAIL_HOST_USER and EMAIL_HOST_PASSWORD",
            "refused the recipient",
        ),
    ],
)
def test_refusals_of_us_at_rcpt(reply: str, expected: str, unexpected: str) -> None:
    code, text = reply.split(" ", 1)
    error = error_from_reply(int(code), text, SMTPStage.RCPT, recipient="ada@example.org")
    found = advice(error)
    assert expected in found
    assert unexpected not in found
    assert "not the recipient" in found


def test_relay_denied_after_logging_in_asks_for_the_account_to_be_allowed() -> None:
    error = error_from_reply(554, "5.7.1 <ada@example.org>: Relay access denied", SMTPStage.RCPT)
    text = advice(error, EMAIL_HOST_USER="mailer")
    assert "logged in as mailer" in text
    assert "set EMAIL_HOST_USER" not in text


def test_advice_for_a_page_names_the_login_setting_not_its_value() -> None:
    error = error_from_reply(535, "5.7.8 Authentication credentials invalid", SMTPStage.AUTH)
    settings = load_settings(environ={"EMAIL_HOST": "relay.example.com", "EMAIL_HOST_USER": "ada"})
    text = diagnose(error, settings, sender_setting="DEFAULT_FROM_EMAIL", name_login=False)
    assert "refused the login of (EMAIL_HOST_USER)" in text
    assert "ada" not in text


def _hidden(line: str, user: str, password: str = "pw-secret-1") -> str:  # noqa: S107
    settings = load_settings(environ={"EMAIL_HOST_USER": user, "EMAIL_HOST_PASSWORD": password})
    return login_hidden(settings)(line)


def test_an_echoed_login_is_taken_out_of_a_relays_reply() -> None:
    reply = "535 5.7.8 authentication failed for mailer@example.com"
    assert _hidden(reply, "mailer@example.com") == (
        "535 5.7.8 authentication failed for (EMAIL_HOST_USER)"
    )
    assert _hidden("550 bad pw-secret-1 given", "x") == "550 bad *** given"


@pytest.mark.parametrize(
    ("user", "line"),
    [
        # Only whole tokens: a short or common user name must not mangle the rest.
        ("a", "our configuration is wrong: 553 <app@example.com> not allowed"),
        ("app", "553 5.7.1 <app@example.com> not owned by this account"),
        ("E", "Check EMAIL_HOST_USER and DEFAULT_FROM_EMAIL"),
        ("USER", "Check EMAIL_HOST_USER and the password (EMAIL_HOST_USER)"),
    ],
)
def test_a_login_inside_other_words_is_left_alone(user: str, line: str) -> None:
    assert _hidden(line, user) == line


def test_the_longest_secret_is_taken_first() -> None:
    # A password inside the user name must not leave part of the name showing.
    assert _hidden("for ops-admin", "ops-admin", password="ops") == "for (EMAIL_HOST_USER)"

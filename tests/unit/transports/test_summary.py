"""Where mail goes, for people (``mailroom.transports.summary``): the status page's transport
card and ``mailroom serve``'s mode line, never naming the SMTP login."""

from __future__ import annotations

from mailroom.config import TransportName, load_settings
from mailroom.transports.summary import mode_line, transport_summary

SMTP = {
    "EMAIL_HOST": "smtp.example.com",
    "EMAIL_HOST_USER": "login-name-7f3a",
    "EMAIL_HOST_PASSWORD": "pass-word-9c1e",
    "EMAIL_USE_TLS": "true",
    "DEFAULT_FROM_EMAIL": "App <app@example.com>",
}


def test_capture_says_nothing_leaves() -> None:
    settings = load_settings(environ={})

    summary = transport_summary(settings)

    assert summary.mode is TransportName.CAPTURE
    assert summary.headline == "Capturing — nothing leaves this machine"
    assert (summary.host, summary.port, summary.security) == (None, None, None)
    assert mode_line(settings) == ("capturing: nothing leaves this machine (see /api/v1/captured)")


def test_smtp_shows_host_port_and_security_but_not_the_login() -> None:
    settings = load_settings(environ=SMTP)

    summary = transport_summary(settings)

    assert summary.mode is TransportName.SMTP
    assert summary.configured
    assert summary.headline == "Relaying through smtp.example.com:587"
    assert (summary.host, summary.port) == ("smtp.example.com", 587)
    assert summary.security == "STARTTLS (EMAIL_USE_TLS)"
    assert summary.from_email == "App <app@example.com>"
    assert summary.noreply_email == "noreply@example.com"
    assert summary.noreply_source == "derived from DEFAULT_FROM_EMAIL"
    shown = repr(summary) + mode_line(settings)
    assert "login-name-7f3a" not in shown
    assert "pass-word-9c1e" not in shown
    assert mode_line(settings) == "relaying through smtp.example.com:587"


def test_implicit_tls_and_a_noreply_setting() -> None:
    settings = load_settings(
        environ={
            **SMTP,
            "EMAIL_USE_TLS": "false",
            "EMAIL_USE_SSL": "true",
            "NOREPLY_EMAIL_ADDRESS": "bounce@example.com",
        }
    )

    summary = transport_summary(settings)

    assert summary.port == 465
    assert summary.security == "TLS from the start (EMAIL_USE_SSL)"
    assert summary.noreply_email == "bounce@example.com"
    assert summary.noreply_source == "environment"


def test_smtp_without_a_host_is_not_configured() -> None:
    settings = load_settings(environ={"MAILROOM_TRANSPORT": "smtp"})

    summary = transport_summary(settings)

    assert not summary.configured
    assert summary.headline == "Not configured"
    assert summary.security == "none: mail and login cross the network unencrypted"
    assert mode_line(settings) == "relaying through localhost:25 (EMAIL_HOST is not set)"


def test_a_development_transport_describes_itself() -> None:
    settings = load_settings(environ={"MAILROOM_TRANSPORT": "null"})

    assert transport_summary(settings).headline == "null"
    assert mode_line(settings) == "null"

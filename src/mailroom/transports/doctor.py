"""Turns a delivery failure into advice a person can act on.

The advice names the settings to look at, in the words operators of Django-style apps know
(``EMAIL_PORT``, ``EMAIL_USE_SSL``, the secrets file). It never repeats a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mailroom.config import Settings
from mailroom.errors import (
    AuthenticationError,
    AuthNotOfferedError,
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    HeloRefusedError,
    PermanentError,
    RelayDeniedError,
    RelayUnreachableError,
    SenderRefusedError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TLSError,
    TransientError,
)

__all__ = ["LOGIN_SHOWN_AS", "diagnose", "login_hidden"]

LOGIN_SHOWN_AS = "(EMAIL_HOST_USER)"
"""What stands for the SMTP login's user name in advice and replies kept or shown on a page."""


def _relay(settings: Settings) -> str:
    return f"{settings.EMAIL_HOST}:{settings.port}"


def _password_hint(settings: Settings) -> str:
    if not settings.EMAIL_HOST_PASSWORD.get_secret_value():
        return (
            "No password is configured: put `email_password = ...` in the secrets file "
            "(named by SECRETS_FILE or MAILROOM_SECRETS), or set EMAIL_HOST_PASSWORD in the "
            "environment."
        )
    return (
        f"The password in use came from {settings.source_of('EMAIL_HOST_PASSWORD')}. "
        "Check it for typos; some providers (Gmail with 2-step verification) need an "
        "app-specific password rather than the account's own."
    )


def _unreachable(error: RelayUnreachableError, settings: Settings) -> list[str]:
    if "resolve" in str(error):
        return [f"Check EMAIL_HOST ({settings.EMAIL_HOST!r}): that name does not resolve."]
    return [
        f"Nothing accepted a connection at {_relay(settings)}.",
        "Check EMAIL_HOST and EMAIL_PORT, and that the relay is running and listening there.",
        f"Your hosting provider or a firewall may block outgoing traffic to port {settings.port}.",
    ]


def _timeout(error: DeliveryTimeoutError, settings: Settings) -> list[str]:
    lines = []
    if error.stage is SMTPStage.CONNECT:
        lines.append(
            f"{_relay(settings)} did not answer within EMAIL_TIMEOUT "
            f"({settings.EMAIL_TIMEOUT:g} s)."
        )
        if settings.port == 465 and not settings.EMAIL_USE_SSL:
            lines.append(
                "Port 465 expects implicit TLS from the first byte: set EMAIL_USE_SSL = true "
                "(and EMAIL_USE_TLS = false)."
            )
        lines.append(
            f"A firewall or your hosting provider may be dropping traffic to port "
            f"{settings.port}; check that it is open from this machine."
        )
    else:
        lines.append(
            f"The relay stopped answering during {error.stage}; it may be overloaded. "
            "Try again later, or raise EMAIL_TIMEOUT."
        )
    return lines


def _tls(error: TLSError, settings: Settings) -> list[str]:
    text = str(error)
    if "certificate" in text.lower():
        return [
            f"The certificate of {settings.EMAIL_HOST} could not be verified.",
            "Check that EMAIL_HOST is the name on the relay's certificate; for a private CA, "
            "point EMAIL_SSL_CAFILE at its certificate.",
        ]
    if settings.EMAIL_USE_SSL:
        return [
            f"TLS/SSL mismatch: EMAIL_USE_SSL is on (implicit TLS), but {_relay(settings)} "
            "does not speak TLS from the start.",
            "If the relay uses STARTTLS (usually port 587), set EMAIL_USE_TLS = true and "
            "EMAIL_USE_SSL = false; port 465 is the one that wants EMAIL_USE_SSL.",
        ]
    if settings.EMAIL_USE_TLS:
        return [
            f"TLS/SSL mismatch: EMAIL_USE_TLS (STARTTLS) is on, but {_relay(settings)} "
            "would not start TLS.",
            "If the relay uses port 465, set EMAIL_USE_SSL = true and EMAIL_USE_TLS = false; "
            "if it offers no TLS at all, turn EMAIL_USE_TLS off (only on a trusted network).",
        ]
    return ["TLS could not be set up with the relay; check EMAIL_USE_TLS and EMAIL_USE_SSL."]


def _auth(error: AuthenticationError, settings: Settings) -> list[str]:
    user = settings.EMAIL_HOST_USER or "(no EMAIL_HOST_USER set)"
    encrypted = settings.EMAIL_USE_TLS or settings.EMAIL_USE_SSL
    if isinstance(error, AuthNotOfferedError) or error.code == 538:
        # No login was tried (538: RFC 4954 §6, encryption required for the mechanism).
        if not encrypted:
            return [
                f"The relay offers no login (AUTH) on an unencrypted connection, so the login "
                f"of {user} was never tried.",
                "Turn on EMAIL_USE_TLS (STARTTLS, usually port 587), or EMAIL_USE_SSL for "
                "implicit TLS (port 465); most relays offer AUTH only once TLS is on.",
            ]
        return [
            f"The relay offers no login (AUTH) even over TLS, so the login of {user} was "
            "never tried.",
            "Check EMAIL_HOST and EMAIL_PORT (a submission port, usually 587, offers it); if "
            "this relay accepts mail from this machine without a login, leave "
            "EMAIL_HOST_USER empty.",
        ]
    return [
        f"The relay refused the login of {user}.",
        "Check EMAIL_HOST_USER and the password.",
        _password_hint(settings),
    ]


_NOT_THE_RECIPIENT = (
    "The refusal came at RCPT TO but is about us, not the recipient (Postfix reports its "
    "checks of the client, the EHLO name and the sender there, by smtpd_delay_reject)."
)


def _helo(settings: Settings) -> list[str]:
    given = settings.EMAIL_LOCAL_HOSTNAME or "this machine's own host name"
    return [
        f"The relay refused the name Mailroom gave in EHLO ({given}).",
        "Set EMAIL_LOCAL_HOSTNAME to this machine's fully-qualified domain name (one with a "
        "dot, e.g. mailer.example.com, ideally resolving to this machine's address).",
        _NOT_THE_RECIPIENT,
    ]


def _relay_denied(error: RelayDeniedError, settings: Settings) -> list[str]:
    client = "client host rejected" in (error.server_text or "").lower()
    what = (
        "The relay refuses mail from this machine (client host rejected)."
        if client
        else "The relay will not pass mail on for Mailroom (relay access denied)."
    )
    if settings.EMAIL_HOST_USER:
        return [
            what,
            f"Mailroom logged in as {settings.EMAIL_HOST_USER}, yet the relay refuses: ask its "
            "administrator to allow that account (or this machine) to send through it.",
            _NOT_THE_RECIPIENT,
        ]
    return [
        what,
        "Log in: set EMAIL_HOST_USER and EMAIL_HOST_PASSWORD (put the password in the secrets "
        "file), usually with EMAIL_USE_TLS on port 587; or have the relay's administrator "
        "trust this machine's address (Postfix: mynetworks).",
        _NOT_THE_RECIPIENT,
    ]


def _refused_us(
    error: SenderRefusedError | HeloRefusedError | RelayDeniedError,
    settings: Settings,
    sender_setting: str,
) -> list[str]:
    """Advice for a relay that refused our sender, our EHLO name or us as a client."""
    if isinstance(error, HeloRefusedError):
        return _helo(settings)
    if isinstance(error, RelayDeniedError):
        return _relay_denied(error, settings)
    lines = [
        f"The relay refused the sender address from {sender_setting}: your relay does not "
        "allow sending from this From address.",
        f"Allow that address at your provider (verify it or its domain), or set "
        f"{sender_setting} to an address the relay accepts.",
    ]
    if error.stage is SMTPStage.RCPT:
        lines.append(_NOT_THE_RECIPIENT)
    return lines


def diagnose(
    error: DeliveryError, settings: Settings, *, sender_setting: str, name_login: bool = True
) -> str:
    """Advice for ``error``; ``sender_setting`` names the setting the From address came from.

    The advice names the SMTP login's user ("the relay refused the login of ada"), which helps
    at the shell; with ``name_login=False`` it says ``(EMAIL_HOST_USER)`` instead, for advice
    that is stored or shown on a page. The relay's reply is not repeated here: the error's own
    message carries it.
    """
    if not name_login and settings.EMAIL_HOST_USER:
        settings = settings.model_copy(update={"EMAIL_HOST_USER": LOGIN_SHOWN_AS})
    lines: list[str]
    if isinstance(error, RelayUnreachableError):
        lines = _unreachable(error, settings)
    elif isinstance(error, DeliveryTimeoutError):
        lines = _timeout(error, settings)
    elif isinstance(error, TLSError):
        lines = _tls(error, settings)
    elif isinstance(error, AuthenticationError):
        lines = _auth(error, settings)
    elif isinstance(error, SenderRefusedError | HeloRefusedError | RelayDeniedError):
        lines = _refused_us(error, settings, sender_setting)
    elif isinstance(error, SMTPUTF8UnsupportedError):
        lines = ["An address has non-ASCII characters before the @ and the relay cannot carry it."]
    elif isinstance(error, PermanentError) and error.stage is SMTPStage.RCPT:
        who = ", ".join(error.refused) or error.recipient or "the recipient"
        lines = [
            f"The relay refused the recipient {who}.",
            "Check the address. A relay that refuses every outside address usually wants you "
            "to log in first: set EMAIL_HOST_USER and the password.",
        ]
    elif isinstance(error, ConnectionLostError):
        lines = [
            f"{_relay(settings)} closed the connection during {error.stage}.",
            "If it closes right after connecting, check EMAIL_USE_TLS / EMAIL_USE_SSL against "
            "what the port expects (587: STARTTLS, 465: implicit TLS).",
        ]
    elif isinstance(error, TransientError):
        lines = [
            "The relay reported a temporary problem; try again later. If it persists, "
            "look at the relay's own log, or at its rate limits."
        ]
    else:
        lines = ["The relay refused the message; its reply above says why."]
    return "\n".join(lines)


def login_hidden(settings: Settings) -> Callable[[str], str]:
    """A filter taking the SMTP login's user name and password out of a relay's reply (a
    relay may echo the user name, as in "authentication failed for ada@example.com") wherever
    it is shown beyond the shell: a page, the database.

    Only whole tokens are replaced (not inside a longer word or address, so a user name such as
    ``app`` leaves ``app@example.com`` alone), the longest secret first, in one pass.
    """
    secrets = {
        settings.EMAIL_HOST_PASSWORD.get_secret_value(): "***",
        settings.EMAIL_HOST_USER: LOGIN_SHOWN_AS,
    }
    secrets.pop("", None)
    if not secrets:
        return lambda line: line
    alternatives = "|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
    token = re.compile(rf"(?<![\w.@+-])(?:{alternatives})(?![\w.@+-])")

    def hide(line: str) -> str:
        return token.sub(lambda found: secrets[found.group(0)], line)

    return hide

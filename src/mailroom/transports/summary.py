"""Where mail goes, for people: ``mailroom serve``'s mode line and the status page's transport
card, from one reading of the settings so the two never disagree.

Never a secret, and never the SMTP user name either: both are shown to whoever can read the
service's output or open its admin pages, and a login name is half of a credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.config import Settings, TransportName
from mailroom.transports import transport_from_settings

__all__ = ["NOTHING_LEAVES", "TransportSummary", "mode_line", "transport_summary"]

NOTHING_LEAVES = "nothing leaves this machine"


@dataclass(frozen=True, slots=True)
class TransportSummary:
    """The transport in use as the status page shows it."""

    mode: TransportName
    headline: str
    """One phrase: ``Capturing — nothing leaves this machine``, ``Relaying through
    smtp.example.com:587``, ``Not configured``, or the transport's own description."""
    configured: bool
    """``False`` for ``smtp`` with no ``EMAIL_HOST`` set (it then tries ``localhost``)."""
    host: str | None
    """The relay (``smtp`` only)."""
    port: int | None
    security: str | None
    """How the connection to the relay is protected (``smtp`` only)."""
    from_email: str
    """``DEFAULT_FROM_EMAIL``."""
    noreply_email: str
    """The noreply address: ``NOREPLY_EMAIL_ADDRESS``, or ``noreply@`` the From domain."""
    noreply_source: str
    """Where the noreply address comes from: the setting's source, or ``DEFAULT_FROM_EMAIL``."""


def _security(settings: Settings) -> str:
    if settings.EMAIL_USE_SSL:
        return "TLS from the start (EMAIL_USE_SSL)"
    if settings.EMAIL_USE_TLS:
        return "STARTTLS (EMAIL_USE_TLS)"
    return "none: mail and login cross the network unencrypted"


def _described(settings: Settings) -> str:
    """A development transport's own description (a file transport's folder, say)."""
    try:
        return transport_from_settings(settings).describe()
    except Exception as exc:  # the worker reports a transport it cannot set up
        return f"{settings.MAILROOM_TRANSPORT} (cannot be set up: {exc})"


def transport_summary(settings: Settings) -> TransportSummary:
    mode = settings.MAILROOM_TRANSPORT
    noreply_source = (
        settings.source_of("NOREPLY_EMAIL_ADDRESS")
        if settings.NOREPLY_EMAIL_ADDRESS
        else "derived from DEFAULT_FROM_EMAIL"
    )
    addresses = (settings.DEFAULT_FROM_EMAIL, settings.noreply_address, noreply_source)
    if mode is TransportName.SMTP:
        # An unset EMAIL_HOST means localhost (Django's default): it works only with a relay on
        # this machine, which is rarely what someone who never named one meant.
        configured = settings.source_of("EMAIL_HOST") != "default"
        return TransportSummary(
            mode=mode,
            headline=(
                f"Relaying through {settings.EMAIL_HOST}:{settings.port}"
                if configured
                else "Not configured"
            ),
            configured=configured,
            host=settings.EMAIL_HOST,
            port=settings.port,
            security=_security(settings),
            from_email=addresses[0],
            noreply_email=addresses[1],
            noreply_source=addresses[2],
        )
    if mode is TransportName.CAPTURE:
        headline = f"Capturing — {NOTHING_LEAVES}"
    else:
        headline = _described(settings)
    return TransportSummary(
        mode=mode,
        headline=headline,
        configured=True,
        host=None,
        port=None,
        security=None,
        from_email=addresses[0],
        noreply_email=addresses[1],
        noreply_source=addresses[2],
    )


def mode_line(settings: Settings) -> str:
    """Where mail goes, in one line for ``mailroom serve``'s start: never a secret."""
    summary = transport_summary(settings)
    if summary.mode is TransportName.CAPTURE:
        return f"capturing: {NOTHING_LEAVES} (see /api/v1/captured)"
    if summary.mode is TransportName.SMTP:
        unset = "" if summary.configured else " (EMAIL_HOST is not set)"
        return f"relaying through {summary.host}:{summary.port}{unset}"
    return summary.headline

"""Checks of the SMTP submission port's settings (``SMTPD_*``), each error naming the setting
to change. Run with every other check (:data:`mailroom.config.checks.CHECKS`), so a wrong
value stops any command, not only ``mailroom smtpd``."""

from __future__ import annotations

import ipaddress

from mailroom.config.model import Settings
from mailroom.errors import SettingsError

__all__ = ["check_smtpd_settings"]

_STREAM_NAME_MAX = 64  # the outbox's stream column


def check_smtpd_settings(settings: Settings) -> None:
    _check_listening(settings)
    _check_limits(settings)


def _check_listening(settings: Settings) -> None:
    """Where it listens, its certificate and who may skip AUTH."""
    if not 0 <= settings.SMTPD_PORT < 65536:
        raise SettingsError(
            "SMTPD_PORT", f"{settings.SMTPD_PORT} is not a port number (0 to 65535)"
        )
    if not settings.SMTPD_HOST.strip():
        raise SettingsError("SMTPD_HOST", "must be an address to listen on, e.g. 127.0.0.1")
    certificate, key = settings.SMTPD_TLS_CERTFILE, settings.SMTPD_TLS_KEYFILE
    if key is not None and certificate is None:
        raise SettingsError(
            "SMTPD_TLS_CERTFILE", "SMTPD_TLS_KEYFILE is set without the certificate it goes with"
        )
    for name, path in (("SMTPD_TLS_CERTFILE", certificate), ("SMTPD_TLS_KEYFILE", key)):
        if path is not None and not path.is_file():
            raise SettingsError(name, f"{str(path)!r} is not a readable file")
    for network in settings.SMTPD_TRUSTED_NETWORKS:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise SettingsError(
                "SMTPD_TRUSTED_NETWORKS",
                f"{network!r} is not an IP address or network; list the networks that may "
                "submit without AUTH, e.g. '10.0.0.0/8, 192.168.1.5'",
            ) from None


def _check_limits(settings: Settings) -> None:
    """What it takes, how fast, from how many connections, into which stream, and how long
    it stops."""
    limit = settings.SMTPD_MAX_MESSAGE_SIZE
    if limit is not None:
        if limit < 1:
            raise SettingsError("SMTPD_MAX_MESSAGE_SIZE", "must be a positive number of bytes")
        if limit > settings.EMAIL_MAX_MESSAGE_SIZE:
            raise SettingsError(
                "SMTPD_MAX_MESSAGE_SIZE",
                f"{limit} is over EMAIL_MAX_MESSAGE_SIZE ({settings.EMAIL_MAX_MESSAGE_SIZE}): "
                "the port would accept messages the outbox refuses to keep; lower it or leave "
                "it unset (it then follows EMAIL_MAX_MESSAGE_SIZE)",
            )
    if settings.SMTPD_MAX_RECIPIENTS < 1:
        raise SettingsError("SMTPD_MAX_RECIPIENTS", "must be at least 1")
    if settings.SMTPD_RATE_LIMIT < 0:
        raise SettingsError(
            "SMTPD_RATE_LIMIT", "must be 0 (no limit) or a number of messages a minute"
        )
    for name in ("SMTPD_MAX_CONNECTIONS", "SMTPD_MAX_CONNECTIONS_PER_CLIENT"):
        if getattr(settings, name) < 1:
            raise SettingsError(name, "must be a positive number of connections")
    if settings.SMTPD_SHUTDOWN_GRACE < 0:
        raise SettingsError("SMTPD_SHUTDOWN_GRACE", "must be 0 or more seconds")
    stream = settings.SMTPD_STREAM
    if not stream or len(stream) > _STREAM_NAME_MAX or not stream.isprintable():
        raise SettingsError(
            "SMTPD_STREAM", f"must be a stream name of 1 to {_STREAM_NAME_MAX} characters"
        )

"""Checks across settings that types alone cannot make (TLS and SSL both on, port 465 with
STARTTLS, a database Mailroom cannot use...), so a bad configuration stops before any
connection. Each check raises the first problem it finds; :func:`load_settings` stops at the
first, while :func:`load_settings_report` runs them all."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from mailroom.config.campaign_checks import check_campaign_settings
from mailroom.config.model import Settings
from mailroom.config.parsers import parse_rate_limits
from mailroom.config.redaction import URL_SCHEME, redact_url
from mailroom.config.smtpd_checks import check_smtpd_settings
from mailroom.errors import MessageError, SettingsError
from mailroom.message import Address

__all__ = ["CHECKS", "MIN_SECRET_KEY_LENGTH"]

MIN_SECRET_KEY_LENGTH = 32
"""Characters; ``python -c 'import secrets; print(secrets.token_urlsafe(32))'`` makes 43."""


def _check_worker_settings(settings: Settings) -> None:
    """Counts and durations of the outbox and its workers."""
    if settings.WORKER_EVENT_LOOP not in ("auto", "asyncio", "uvloop"):
        raise SettingsError("WORKER_EVENT_LOOP", "must be auto, asyncio or uvloop")
    for name in (
        "EMAIL_MAX_ATTEMPTS",
        "EMAIL_MAX_RECIPIENTS_PER_MESSAGE",
        "WORKER_CONCURRENCY",
        "WORKER_BATCH_SIZE",
        "WORKER_PROCESSES",
        "WORKER_MAX_BATCH_BYTES",
    ):
        if getattr(settings, name) < 1:
            raise SettingsError(name, "must be at least 1")
    for name in (
        "EMAIL_MAX_AGE",
        "EMAIL_RETRY_DELAY",
        "WORKER_LEASE_SECONDS",
        "WORKER_POLL_INTERVAL",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(name, "must be a positive number of seconds")
    if settings.WORKER_SHUTDOWN_GRACE < 0:
        raise SettingsError("WORKER_SHUTDOWN_GRACE", "must be 0 or more seconds")


def _check_tls(settings: Settings) -> None:
    if settings.EMAIL_USE_TLS and settings.EMAIL_USE_SSL:
        raise SettingsError(
            "EMAIL_USE_TLS",
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both on; they are mutually exclusive. "
            "Use EMAIL_USE_TLS for STARTTLS (usually port 587) or EMAIL_USE_SSL for implicit "
            "TLS (usually port 465).",
        )


def _check_port(settings: Settings) -> None:
    if settings.EMAIL_PORT is not None and not 0 < settings.EMAIL_PORT < 65536:
        raise SettingsError(
            "EMAIL_PORT", f"{settings.EMAIL_PORT} is not a port number (1 to 65535)"
        )
    if settings.EMAIL_PORT == 465 and settings.EMAIL_USE_TLS and not settings.EMAIL_USE_SSL:
        raise SettingsError(
            "EMAIL_USE_TLS",
            "port 465 speaks implicit TLS, not STARTTLS: set EMAIL_USE_SSL = true and "
            "EMAIL_USE_TLS = false (or use port 587 with EMAIL_USE_TLS)",
        )


def _check_sending(settings: Settings) -> None:
    if settings.EMAIL_TIMEOUT <= 0:
        raise SettingsError("EMAIL_TIMEOUT", "must be a positive number of seconds")
    if settings.EMAIL_MAX_MESSAGE_SIZE <= 0:
        raise SettingsError("EMAIL_MAX_MESSAGE_SIZE", "must be a positive number of bytes")


def _check_pacing(settings: Settings) -> None:
    if settings.EMAIL_BURST < 0 or settings.EMAIL_BURST_PAUSE < 0:
        raise SettingsError("EMAIL_BURST", "EMAIL_BURST and EMAIL_BURST_PAUSE cannot be negative")
    if settings.EMAIL_BURST_PAUSE and not settings.EMAIL_BURST:
        raise SettingsError("EMAIL_BURST", "EMAIL_BURST_PAUSE is set but EMAIL_BURST is 0")
    parse_rate_limits(settings.EMAIL_RATE_LIMIT)  # raises SettingsError naming the setting


def _check_client_certificate(settings: Settings) -> None:
    if settings.EMAIL_SSL_KEYFILE and not settings.EMAIL_SSL_CERTFILE:
        raise SettingsError("EMAIL_SSL_CERTFILE", "EMAIL_SSL_KEYFILE is set but no certificate")


_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+\Z")  # RFC 5322 §2.2 field name


def _check_base_url(name: str, value: str, *, https_only: bool) -> None:
    if not value:
        return
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme not in schemes or not parts.netloc or parts.query or parts.fragment:
        need = "an https:// URL" if https_only else "an http:// or https:// URL"
        why = " (RFC 8058 one-click unsubscribe links must be HTTPS)" if https_only else ""
        raise SettingsError(
            name, f"must be {need} without query or fragment, e.g. https://app.example{why}"
        )


def _check_notification_settings(settings: Settings) -> None:
    key = settings.SECRET_KEY.get_secret_value()
    if key and len(key) < MIN_SECRET_KEY_LENGTH:
        # The value is never echoed, only its length requirement.
        raise SettingsError(
            "SECRET_KEY",
            f"is too short to sign links safely; use at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters",
        )
    _check_base_url("FRONTEND_BASE_URL", settings.FRONTEND_BASE_URL, https_only=False)
    _check_base_url("PUBLIC_BASE_URL", settings.PUBLIC_BASE_URL, https_only=True)
    if not _HEADER_NAME.match(settings.NOTIFICATION_TYPE_HEADER):
        raise SettingsError(
            "NOTIFICATION_TYPE_HEADER", "must be a header field name (printable ASCII, no colon)"
        )
    if settings.UNSUBSCRIBE_TOKEN_MAX_AGE <= 0:
        raise SettingsError("UNSUBSCRIBE_TOKEN_MAX_AGE", "must be a positive number of seconds")
    if settings.TEMPLATE_RENDER_TIMEOUT <= 0:
        raise SettingsError("TEMPLATE_RENDER_TIMEOUT", "must be a positive number of seconds")
    if settings.TEMPLATE_MAX_OUTPUT_CHARS < 1:
        raise SettingsError("TEMPLATE_MAX_OUTPUT_CHARS", "must be at least 1")
    addresses = [
        (name, a) for name in ("ADMINS", "EMAIL_FALLBACK_TO") for a in getattr(settings, name)
    ]
    addresses += [
        (name, getattr(settings, name))
        for name in ("SERVER_EMAIL", "UNSUBSCRIBE_EMAIL_ADDRESS")
        if getattr(settings, name)
    ]
    for name, address in addresses:
        try:
            Address.parse(address, name)
        except MessageError as exc:
            raise SettingsError(name, str(exc).removeprefix(f"{name}: ")) from None


# The database URL schemes Mailroom runs on (SQLAlchemy dialect[+driver]); psycopg 3 is the
# PostgreSQL driver it installs and is added to a bare postgresql:// URL.
_DATABASE_SCHEMES = frozenset(
    {
        "sqlite",
        "sqlite+pysqlite",
        "postgresql",
        "postgres",
        "postgresql+psycopg",
        "postgres+psycopg",
    }
)


def _check_database_url(settings: Settings) -> None:
    """Refuse a database Mailroom cannot use now, not at the first query."""
    url = settings.DATABASE_URL.strip()
    match = URL_SCHEME.match(url)
    scheme = match.group()[:-3] if match else ""
    if scheme in _DATABASE_SCHEMES:
        return
    if scheme.lower() in _DATABASE_SCHEMES:  # SQLAlchemy finds its dialects by exact name
        what = f"{scheme}:// must be written in lower case"
    elif scheme:
        what = f"{scheme}:// is not supported"
    else:
        what = "is not a database URL"
    raise SettingsError(
        "DATABASE_URL",
        f"{what} ({redact_url(url)!r} from {settings.source_of('DATABASE_URL')}); Mailroom runs on "
        "SQLite (sqlite:///path/to/mailroom.db) or PostgreSQL "
        "(postgresql://user:password@host:5432/dbname)",
    )


def _check_service_settings(settings: Settings) -> None:
    """Limits of ``mailroom serve`` and the capture transport, and who may forward for it."""
    for name in ("CAPTURE_MAX_MESSAGES", "API_MAX_BODY_BYTES", "API_MAX_BATCH_SIZE"):
        if getattr(settings, name) < 1:
            raise SettingsError(name, "must be at least 1")
    for address in settings.FORWARDED_ALLOW_IPS:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise SettingsError(
                "FORWARDED_ALLOW_IPS",
                f"{address!r} is not an IP address or network; list the proxies whose "
                "X-Forwarded-For and X-Forwarded-Proto headers are believed, e.g. "
                "'127.0.0.1, 10.0.0.0/8'",
            ) from None


CHECKS: tuple[Callable[[Settings], None], ...] = (
    _check_tls,
    _check_port,
    _check_sending,
    _check_worker_settings,
    _check_pacing,
    _check_client_certificate,
    _check_notification_settings,
    _check_service_settings,
    _check_database_url,
    check_smtpd_settings,
    check_campaign_settings,
)
"""Every check, in the order their problems are reported."""

"""``EMAIL_URL``: one URL standing for the transport and its relay settings
(``smtp://user:pass@host:587?tls=true``), expanded into the settings it stands for.

No error message quotes the URL or any part of it that could hold the user information.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from mailroom.config.model import TransportName
from mailroom.config.redaction import URL_SCHEME
from mailroom.errors import SettingsError

__all__ = ["expand_email_url", "url_has_password"]

_URL_OPTIONS = {"tls": "EMAIL_USE_TLS", "ssl": "EMAIL_USE_SSL", "timeout": "EMAIL_TIMEOUT"}

_ENCODE_ADVICE = (
    "special characters in the user name and password must be percent-encoded (/ as %2F, "
    "? as %3F, # as %23, @ as %40, : as %3A, % as %25), or leave the password out of "
    "EMAIL_URL and set EMAIL_HOST_PASSWORD or email_password in the secrets file"
)


def _expand_smtp_url(parts: SplitResult, port: int | None, source: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "MAILROOM_TRANSPORT": TransportName.SMTP,
        "EMAIL_USE_SSL": parts.scheme.lower() == "smtps",
    }
    if parts.hostname:
        values["EMAIL_HOST"] = parts.hostname
    if port is not None:
        values["EMAIL_PORT"] = port
    if parts.username:
        values["EMAIL_HOST_USER"] = unquote(parts.username)
    if parts.password:
        values["EMAIL_HOST_PASSWORD"] = unquote(parts.password)
    for option, value in parse_qs(parts.query).items():
        setting = _URL_OPTIONS.get(option.lower())
        if setting is None:
            raise SettingsError(
                "EMAIL_URL",
                # The option's name is not echoed: a query string is where the tail of a
                # password with an unencoded '?' would land.
                f"unknown option ({source}); known options are tls, ssl and timeout",
            )
        values[setting] = value[-1]
    return values


def _userinfo_spills_over(url: str) -> bool:
    """Whether an ``@`` comes after the end of the authority (RFC 3986 §3.2: the first ``/``,
    ``?`` or ``#``): then a user name or password holds one of those unencoded, and the parser
    would take the rest of the password for a path, query or fragment."""
    _, sep, rest = url.partition("://")
    if not sep:
        return False
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return "@" in rest[min(ends, default=len(rest)) :]


def expand_email_url(url: str, source: str) -> dict[str, Any]:
    """``smtp://user:pass@host:587?tls=true`` → the settings it stands for, the transport as
    ``MAILROOM_TRANSPORT``; ``source`` (where the URL was read) is named in errors."""
    match = URL_SCHEME.match(url)
    if match is None:
        # Nothing of it is echoed: it may be a password put in the wrong variable.
        raise SettingsError(
            "EMAIL_URL",
            f"is not a URL ({source}); write smtp://user@host:587?tls=true, smtps://host, "
            "capture://, console://, file:///path, memory:// or null://",
        )
    scheme = match.group()[:-3].lower()
    smtp = scheme in ("smtp", "smtps", "submission")
    if smtp and _userinfo_spills_over(url):
        raise SettingsError(
            "EMAIL_URL",
            f"the user name or password ({source}) contains an unencoded /, ? or #, so the "
            f"URL cannot be read; {_ENCODE_ADVICE}",
        )
    part = ""
    try:
        parts = urlsplit(url)
    except ValueError:
        part = "the host is not a name or a bracketed [IPv6] address"
    else:
        try:
            port = parts.port
        except ValueError:
            part = "the port is not a number from 1 to 65535"
    if part:
        # Not the parser's message: it quotes the "port", which with an unencoded character
        # in the password is a piece of the password.
        raise SettingsError("EMAIL_URL", f"not a valid URL ({source}): {part}; {_ENCODE_ADVICE}")
    if smtp:
        return _expand_smtp_url(parts, port, source)
    if scheme in ("capture", "console", "memory", "null"):
        return {"MAILROOM_TRANSPORT": TransportName(scheme)}
    if scheme == "file":
        values: dict[str, Any] = {"MAILROOM_TRANSPORT": TransportName.FILE}
        if parts.path:
            values["EMAIL_FILE_PATH"] = unquote(parts.path)
        return values
    raise SettingsError(
        "EMAIL_URL",
        f"unknown scheme {scheme!r} ({source}); use smtp://, smtps://, capture://, "
        "console://, file://, memory:// or null://",
    )


def url_has_password(url: str) -> bool:
    """Whether ``url`` carries a password in its user information (a URL that cannot be
    read has none to warn about: reading it reports the problem)."""
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False

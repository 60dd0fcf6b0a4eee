"""``DATABASE_URL`` as it may be shown, and its secrets kept out of whatever is shown.

:func:`parse_url` refuses a URL whose password would be read in part as the host (an unencoded
``@``) before SQLAlchemy or a driver could echo a piece of it; :func:`display_url` shows a URL
through :func:`mailroom.config.redact_url`, a SQLite file as an absolute path; :func:`scrub`
and :func:`scrub_chain` take every piece of the URL's secrets out of a driver's words, which
echo what the driver parsed (a host name that may be the tail of a password).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mailroom.config import REDACTED, redact_url, url_secrets
from mailroom.errors import DatabaseError

__all__ = [
    "check_password_parsed",
    "display_url",
    "parse_url",
    "parsed_or_none",
    "scrub",
    "scrub_chain",
    "sqlite_path",
]


def parse_url(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    _check_userinfo(url)
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        # SQLAlchemy raises ValueError for a port that is not a number, and its message
        # quotes the port as parsed: with an unencoded character in the password, a piece of
        # the password.
        # The value is not echoed: it may hold a password.
        raise DatabaseError(
            "DATABASE_URL is not a database URL; write sqlite:///path/to/mailroom.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from None


def _check_userinfo(url: str) -> None:
    """Refuse an unencoded ``@`` in the password. SQLAlchemy (like libpq) ends the password
    at its first ``@`` and reads the rest as the host (and port, path, query): a piece of the
    password would become a host name to resolve, or a port that is not a number, and the
    driver's or SQLAlchemy's error would quote it. The user information ends at the *last*
    ``@`` (as :func:`~mailroom.config.redact_url` reads it), and any ``@`` after the first
    ``:`` before that one is refused, whatever follows it (a ``/``, ``?`` or ``#`` in the
    password moves RFC 3986's authority boundary, so nothing after it can be trusted). An
    ``@`` in the user name ("ada@example.com:pw@host", as some hosted PostgreSQL services
    name users) is read as SQLAlchemy reads it, and is allowed."""
    _scheme, separator, rest = url.strip().partition("://")
    if not separator or rest.startswith("/"):
        return  # no authority ("sqlite:////srv/a@b.db": the "@" is in the path)
    _user, colon, password = rest[: rest.rfind("@") + 1].partition(":")
    if colon and "@" in password[:-1]:
        raise DatabaseError(
            f"DATABASE_URL {redact_url(url.strip())}: the password holds an unencoded '@', so "
            "the rest of it would be read as the host name; write each '@' in the password "
            "as %40 (RFC 3986 percent-encoding; ':', '/', '?' and '#' as %3A, %2F, %3F, %23)"
        )


def sqlite_path(url: str | URL) -> Path | None:
    """The absolute path of a SQLite database file; ``None`` for other databases and for an
    in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).absolute()


def _url_text(url: str | URL) -> str:
    """The URL as text with its password in it (percent-encoded by SQLAlchemy when ``url``
    is parsed), for the redactor to take out."""
    return url if isinstance(url, str) else url.render_as_string(hide_password=False)


def display_url(url: str | URL) -> str:
    """The URL as it may be shown: through :func:`~mailroom.config.redact_url` (the one
    redactor for every URL Mailroom shows), a SQLite file as an absolute path (a relative one
    says nothing about which folder the command ran in)."""
    try:
        path = sqlite_path(url)
    except DatabaseError:  # not parsable: shown as written, through the redactor
        path = None
    if path is not None:
        return f"sqlite:///{path}"
    return redact_url(_url_text(url).strip())


# A password is split at these by one parser or another (SQLAlchemy and libpq end it at its
# first "@"); a driver then shows a piece of it as the host, the port or the database name.
_URL_DELIMITERS = re.compile(r"[@:/?#&;\[\]]")
_MIN_PIECE = 4  # shorter pieces are common words and numbers, not a password's


def _secrets(url: str | URL) -> set[str]:
    """Every form in which a secret of ``url`` may reach a driver's message: as written, as
    decoded, as SQLAlchemy read the password, and each piece of these between delimiters."""
    found: set[str] = set(url_secrets(_url_text(url)))
    if isinstance(url, str):
        found.update(url_secrets(url.strip()))
    parsed = parsed_or_none(url)
    if parsed is not None and parsed.password:
        found.add(str(parsed.password))  # what the driver got, however short
    found |= {unquote(secret) for secret in found}
    pieces = {
        piece
        for secret in found
        for piece in _URL_DELIMITERS.split(secret)
        if len(piece) >= _MIN_PIECE
    }
    return {secret for secret in found | pieces if secret}


def parsed_or_none(url: str | URL) -> URL | None:
    """``url`` parsed, or ``None`` where :func:`parse_url` refuses it."""
    try:
        return parse_url(url)
    except DatabaseError:
        return None


def scrub(text: str, url: str | URL) -> str:
    """``text`` (a driver's message) with every secret of ``url`` in it, whole or a piece of
    four characters or more, replaced by ``***``."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def scrub_chain(exc: BaseException, url: str | URL) -> None:
    """Take every secret of ``url`` out of ``exc`` and the exceptions chained to it, in
    place. A translated :class:`DatabaseError` keeps the driver's exception as its cause
    (SQLAlchemy chains it with ``raise ... from`` whatever its ``handle_error`` hook raises),
    and a ``-v`` traceback or a logged one prints that chain: it must say nothing the error
    itself may not. An exception whose text does not come from its ``args`` (so cannot be
    rewritten) ends the chain: what was chained to it is dropped."""
    seen: set[int] = set()
    parent: BaseException | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        clean = scrub(text, url)
        if clean != text:
            current.args = (clean,)
            if str(current) != clean and parent is not None:
                # Its text is not its args (an OSError's strerror): drop it from the chain.
                parent.__cause__ = parent.__context__ = None
                parent.__suppress_context__ = True
                return
        parent, current = current, current.__cause__ or current.__context__


def check_password_parsed(url: str | URL) -> None:
    """Refuse a password with an unencoded ``@`` (see :func:`_check_userinfo`); the check
    runs before the URL is parsed, since parsing it may already fail with a piece of the
    password in the message. A parsed :class:`URL` whose host still holds an ``@`` is
    refused too."""
    parsed = parse_url(url)
    if parsed.host is not None and "@" in parsed.host:
        raise DatabaseError(
            f"DATABASE_URL {display_url(url)}: the password holds an unencoded '@', so the "
            "rest of it would be read as the host name; write each '@' in the password as "
            "%40 (RFC 3986 percent-encoding; ':', '/', '?' and '#' as %3A, %2F, %3F, %23)"
        )

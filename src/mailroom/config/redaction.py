"""URLs as they may be shown: the password of the user information (and any ``password=``
query parameter) replaced by ``***`` in output, logs and error messages."""

from __future__ import annotations

import re

__all__ = ["REDACTED", "URL_SCHEME", "redact_url", "url_secrets"]

URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
"""A URL's scheme and its ``://``, matched at the start."""
# libpq and others also take a password as a query parameter (?password=...).
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:password|passwd|pwd|pass|secret)=)[^&#;]*")
REDACTED = "***"


def _split_url(url: str) -> tuple[str, str, str | None, str]:
    """``url`` as (scheme and ``//``, user, password or ``None``, the rest from the ``@`` on).

    RFC 3986 §3.2 ends the authority at the first ``/``, ``?`` or ``#``, but an unencoded one
    inside the password moves that boundary, so the user information is taken up to the
    *last* ``@``: better to hide a piece of the path than to show a piece of the password.
    Without user information, user is ``""`` and the rest is all after the scheme.
    """
    match = URL_SCHEME.match(url)
    head = match.group() if match else ""
    rest = url[len(head) :]
    at = rest.rfind("@")
    # "sqlite:////srv/a@b.db": an empty authority, the "@" is in the path.
    if at < 0 or rest.startswith("/"):
        return head, "", None, rest
    user, colon, password = rest[:at].partition(":")
    return head, user, password if colon else None, rest[at:]


def redact_url(url: str) -> str:
    """``url`` with the password of its user information (and any ``password=`` query
    parameter) replaced by ``***``, for showing in output, logs and error messages.

    Never raises. The user information ends at the *last* ``@`` (see :func:`_split_url`).
    """
    head, user, password, rest = _split_url(url)
    shown = f"{user}:{REDACTED}{rest}" if password is not None else user + rest
    return head + _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", shown)


def url_secrets(url: str) -> tuple[str, ...]:
    """What :func:`redact_url` hides in ``url``, as written there: the password of its user
    information and the values of its ``password=`` query parameters. For taking them out of
    text that was not built by us, such as a database driver's error message."""
    _head, _user, password, rest = _split_url(url)
    found = [password] if password else []
    found += [m.group()[len(m.group(1)) :] for m in _QUERY_SECRET.finditer(rest)]
    return tuple(secret for secret in found if secret)

"""The common message shapes written straight to bytes, identical to what the email package
would write for them.

Enqueueing spent over 90% of its time in :mod:`email`'s generic machinery (header objects,
policies, a generator walking the tree) to produce, for most mail, a few fixed lines around
an ASCII body. :func:`compose` writes those shapes directly: a text/plain or text/html part,
or both as multipart/alternative, with printable-ASCII headers and any text bodies. Anything
else (attachments, non-ASCII headers, values the email package would encode) returns ``None``
and takes the general path in :mod:`mailroom.message.mime`. Tests compare the two byte for
byte over generated messages.

Two of the general path's steps are taken with its own functions rather than copied: a header
longer than a line is folded at its blanks as :func:`~mailroom.message.headers.set_unstructured`
folds it (a campaign's ``List-Unsubscribe``), and a body that is not 7bit text with short lines
is encoded by the email package's own choice of quoted-printable or base64
(``email.contentmanager``'s encoder, which ``set_content`` calls): a campaign's footer carries
a URL longer than a line, and that alone sent every campaign message down the general path at
a twentieth of the speed.
"""

from __future__ import annotations

import email.policy
import random
import re
import sys
from collections.abc import Callable, Iterable
from email import contentmanager

from mailroom.message.headers import MAX_LINE_OCTETS, fold_at_blanks, is_plain_ascii

__all__ = ["compose"]

# What set_content itself calls to choose and apply a text part's transfer encoding: private,
# and the one way to get byte for byte what the general path writes.
_encode_text: Callable[[str, str, str | None, email.policy.Policy], tuple[str, str]] = (
    contentmanager._encode_text  # type: ignore[attr-defined]
)

# The general path's policy for a message that needs no SMTPUTF8 (mime.POLICY_ASCII; not
# imported from there, which imports this module's neighbours).
_POLICY = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")

_MAX_LINE = 78  # email.policy.SMTP's max_line_length: longer lines are folded or encoded
# A value the email package writes unchanged: printable ASCII words, single spaces between.
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))  # as email.generator makes them


def _unstructured(name: str, value: str) -> str | None:
    if len(name) + 2 + len(value) <= _MAX_LINE and "=?" not in value and _PLAIN_VALUE.match(value):
        return f"{name}: {value}\r\n"
    # Longer: folded at its blanks, as set_unstructured does for the general path; a word
    # too long even for a 998-octet line (a Subject's goes into encoded words) goes there.
    if len(name) + 2 + len(value) <= _MAX_LINE or name == "Message-ID":
        # Short and not plain; or a Message-ID, which the general path folds after its
        # colon when long (a sender's domain of 31 characters or more): the email
        # package's own choices.
        return None
    if not is_plain_ascii(value) or value != value.strip() or "  " in value:
        return None
    if len(name) + 2 + max(map(len, value.split(" "))) > MAX_LINE_OCTETS:
        return None
    folded = fold_at_blanks(name, value)
    return f"{name}: {folded}\r\n".replace("\n", "\r\n").replace("\r\r\n", "\r\n")


def _seven_bit(body: str) -> bytes | None:
    """The body as email.contentmanager writes 7bit text: lines ended by CRLF, a final one
    added; ``None`` unless it is ASCII with every line within 78 octets."""
    if not body.isascii():
        return None
    if "\r" in body:  # lone CRs end lines too: the email package's own way, line by line
        lines = body.encode("ascii").splitlines()
        if lines and max(map(len, lines)) > _MAX_LINE:
            return None
        return b"\r\n".join(lines) + b"\r\n"
    if max(map(len, body.split("\n"))) > _MAX_LINE:
        return None
    if not body.endswith("\n"):
        body += "\n"
    return body.encode("ascii").replace(b"\n", b"\r\n")


def _encoded(body: str) -> tuple[str, bytes]:
    """The body's transfer encoding and bytes: 7bit when it can be, else what the email
    package's ``set_content`` picks (quoted-printable or base64), with CRLF line ends."""
    seven = _seven_bit(body)
    if seven is not None:
        return "7bit", seven
    cte, data = _encode_text(body, "utf-8", None, _POLICY)
    if cte not in {"quoted-printable", "base64"}:  # 7bit/8bit are handled above, or never
        raise AssertionError(f"unexpected transfer encoding {cte}")
    return cte, data.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def _part_headers(subtype: str, cte: str = "7bit") -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n".encode("ascii")
    )


def _boundary(*bodies: bytes) -> str:
    while True:
        # The generator's own form; random, not secrets: it only has to be absent from the
        # bodies, which is checked.
        token = random.randrange(sys.maxsize)  # noqa: S311
        boundary = f"{'=' * 15}{token:0{_BOUNDARY_DIGITS}d}=="
        encoded = boundary.encode("ascii")
        if not any(encoded in body for body in bodies):
            return boundary


def compose(
    text: str | None,
    html: str | None,
    address_headers: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
) -> bytes | None:
    """The message's bytes, or ``None`` if it is not one of the shapes handled here.

    ``address_headers`` are already formatted (as
    :func:`mailroom.message.address.address_headers` makes them to be set raw, continuation
    lines joined by ``"\\n "``); ``headers`` are unstructured values in order
    (Subject, Date, Message-ID, then the caller's own).
    """
    lines = [f"{name}: {value}\r\n".replace("\n ", "\r\n ") for name, value in address_headers]
    for name, value in headers:
        line = _unstructured(name, value)
        if line is None:
            return None
        lines.append(line)
    joined = "".join(lines)
    if not joined.isascii():
        return None
    head = joined.encode("ascii")

    if text is None and html is not None:
        only, subtype = html, "html"
    elif html is None:
        only, subtype = text or "", "plain"
    else:
        if not text or not html:  # the email package lays empty parts out differently
            return None
        (plain_cte, plain_body), (html_cte, html_body) = _encoded(text), _encoded(html)
        boundary = _boundary(plain_body, html_body)
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        return b"".join(
            (
                b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n",
                f' boundary="{boundary}"\r\n'.encode("ascii"),
                head,
                delimiter,  # the blank line that ends the headers, then the first boundary
                _part_headers("plain", plain_cte),
                b"\r\n",
                plain_body,
                delimiter,
                _part_headers("html", html_cte),
                b"MIME-Version: 1.0\r\n\r\n",
                html_body,
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
    cte, body = _encoded(only)
    return b"".join((_part_headers(subtype, cte), b"MIME-Version: 1.0\r\n", head, b"\r\n", body))

"""What a submitted message must be before it is stored, and the two header fields a
submission server adds when they are missing (RFC 6409 §8.2, §8.3), below the caller's
``Received`` field (:mod:`.trace`).

The bytes are stored as they came: nothing is re-encoded, re-folded or re-ordered, so a
header cannot be injected by us, and what the author signed stays signed. The checks refuse
what a relay would refuse later, or what could be read two ways on the way out:

- a NUL anywhere (RFC 5322 §2.2, §3.5), or a bare CR or LF (RFC 5322 §2.3; a bare LF before
  a dot is what "SMTP smuggling" uses to end a message early at a lenient relay);
- a header line that is neither ``Name: value`` with a printable ASCII name nor the folded
  continuation of one (RFC 5322 §2.2, §3.2.2);
- no ``From`` field, or more than one ``From``, ``Date``, ``Message-ID`` or ``Subject``
  (RFC 5322 §3.6: each at most once, ``From`` and ``Date`` required);
- over the size limit once ``Received``, ``Date`` and ``Message-ID`` are added.

Each refusal is a :class:`Refused` carrying the reply (a permanent 5xx: sending the same
bytes again cannot succeed).
"""

from __future__ import annotations

import email.header
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from mailroom.message.ids import make_message_id

__all__ = ["CheckedMessage", "Refused", "check_message", "date_now"]

_ONCE = (b"from", b"date", b"message-id", b"subject")
_NAME_CHARACTERS = frozenset(range(33, 127)) - {ord(":")}  # RFC 5322 §2.2 ftext
_MESSAGE_ID_MAX = 255  # the outbox column; the bytes keep the whole header


class Refused(Exception):  # noqa: N818 - a reply, not a failure of ours
    """A message the port does not take; ``reply`` is the SMTP answer, code first."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    data: bytes
    """The bytes as submitted, below the ``Received`` field given and, if they were
    missing, ``Date`` and ``Message-ID``."""
    message_id: str
    subject: str
    """Decoded for listings (RFC 2047 encoded words); ``""`` if there is none."""
    utf8_headers: bool
    """Raw UTF-8 in the header (RFC 6532): the relay must then offer SMTPUTF8."""


def check_message(
    data: bytes, *, sender_domain: str, max_size: int, trace: bytes = b""
) -> CheckedMessage:
    """``data`` checked (see the module's docstring), or :class:`Refused`; ``trace`` (the
    ``Received`` field) is put first, and counts in the size."""
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        raise Refused(
            "550 5.6.0 The message has a bare CR or LF; every line must end in CRLF (RFC 5322 2.3)"
        )
    if b"\x00" in data:
        # RFC 5322 §2.2, §3.5 (and PostgreSQL's text columns, where a NUL in the subject
        # would fail the commit of every message grouped with this one).
        raise Refused("550 5.6.0 The message has a NUL character; no line may hold one")
    end = data.find(b"\r\n\r\n")
    header = data[: end + 2] if end >= 0 else data
    if data.startswith(b"\r\n"):
        header = b""
    fields = _header_fields(header)
    if b"from" not in fields:
        raise Refused("550 5.6.0 The message has no From header field (RFC 5322 3.6.2)")
    added = trace
    if b"date" not in fields:
        added += b"Date: " + date_now() + b"\r\n"
    message_id = fields.get(b"message-id", b"").decode("utf-8", "replace").strip()
    if not message_id:
        message_id = make_message_id(sender_domain)
        added += f"Message-ID: {message_id}\r\n".encode("ascii")
    if len(data) + len(added) > max_size:
        raise Refused(
            f"552 5.3.4 The message is {len(data) + len(added)} bytes with the header "
            f"fields added here (Received, Date, Message-ID); the limit is {max_size}"
        )
    return CheckedMessage(
        data=added + data if added else data,
        message_id=message_id[:_MESSAGE_ID_MAX],
        subject=_decoded(fields.get(b"subject", b"")),
        utf8_headers=not header.isascii(),
    )


_date_cache: tuple[int, bytes] = (0, b"")


def date_now() -> bytes:
    """The Date field's value for now (RFC 5322 §3.3), formatted once a second."""
    global _date_cache  # noqa: PLW0603 - a one-entry cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)).encode())
    return _date_cache[1]


def _header_fields(header: bytes) -> dict[bytes, bytes]:
    """The fields named in :data:`_ONCE`, by lower-case name, their values unfolded; the
    others are only checked for shape."""
    found: dict[bytes, bytes] = {}
    current: bytes | None = None
    for number, line in enumerate(header.split(b"\r\n")[:-1], start=1):
        if line[:1] in (b" ", b"\t"):
            if number == 1:
                raise Refused(
                    "550 5.6.0 The message starts with a folded line, not a header field "
                    "(RFC 5322 2.2.3)"
                )
            if current is not None:
                found[current] += line
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or not _NAME_CHARACTERS.issuperset(name):
            raise Refused(
                f"550 5.6.0 Header line {number} is not 'Name: value' (RFC 5322 2.2); end the "
                "header with an empty line before the body"
            )
        lowered = name.lower()
        if lowered in _ONCE:
            if lowered in found:
                shown = name.decode("ascii")
                raise Refused(
                    f"550 5.6.0 The message has more than one {shown} field (RFC 5322 3.6)"
                )
            found[lowered] = value
            current = lowered
        else:
            current = None
    return found


def _decoded(value: bytes) -> str:
    text = value.decode("utf-8", "replace").strip()
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text  # shown as written: it is only for listings

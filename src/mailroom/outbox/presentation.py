"""The outbox's rows as people read them, for the CLI and the web pages alike.

Durations as operators write them (``30m``, ``1d12h``), times in UTC, text clipped to one
line, the recipients cell of a listing, and rows as JSON. Nothing here knows the medium: what
makes a stored text safe to show (escaping for a terminal, for HTML) is the caller's ``escape``.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mailroom.outbox.operator_queries import AttemptRow, MessageDetail, MessageRow

__all__ = [
    "COMMON_HEADERS",
    "LIST_COLUMNS",
    "AttachedFile",
    "MessageParts",
    "clip",
    "consent_summary",
    "detail_json",
    "list_cells",
    "message_headers",
    "message_parts",
    "parse_duration",
    "recipients_cell",
    "row_json",
    "utc_time",
]

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")

COMMON_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")
"""The header fields a message's JSON always has as keys (``null`` when absent)."""

LIST_COLUMNS = (
    "ID",
    "STATUS",
    "STREAM",
    "ATT",
    "CREATED (UTC)",
    "DUE (UTC)",
    "TO",
    "SUBJECT",
    "LAST ERROR",
)
"""The headings of a listing of messages, one per cell of :func:`list_cells`."""


def _as_is(text: str) -> str:
    return text


def parse_duration(value: str) -> float:
    """``30m``, ``2h``, ``7d``, ``1d12h`` in seconds; ``ValueError`` saying how to write one."""
    text = value.strip().lower()
    if not _DURATION.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a duration: write a number and a unit, like 30m, 2h, 7d or "
            "1d12h (units: s seconds, m minutes, h hours, d days, w weeks)"
        )
    return float(
        sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    )


def utc_time(epoch: float | None) -> str:
    """``2026-01-31 23:59:59`` (UTC), or ``-`` for no time. A time no date can show (a row
    written before such times were refused) is shown as the raw number it is stored as."""
    if epoch is None:
        return "-"
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return repr(epoch)


def clip(text: str | None, width: int, escape: Callable[[str], str] = _as_is) -> str:
    """``text`` on one line (runs of whitespace become one space), escaped by ``escape``, and
    at most ``width`` characters as shown, ending in ``…`` when cut."""
    line = " ".join((text or "").split())
    shown = escape(line)
    if len(shown) <= width:
        return shown
    # Clipped by what is shown, a whole escape or none of it: never "\x1" before the "…".
    pieces, used = [], 0
    for char in line:
        piece = escape(char)
        if used + len(piece) > width - 1:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + "…"


def recipients_cell(recipients: Sequence[str], escape: Callable[[str], str] = _as_is) -> str:
    """The first recipient (clipped), and how many more: ``a@example.com +2``."""
    if not recipients:
        return ""
    more = f" +{len(recipients) - 1}" if len(recipients) > 1 else ""
    return clip(recipients[0], 32, escape) + more


def list_cells(row: MessageRow, escape: Callable[[str], str] = _as_is) -> tuple[str, ...]:
    """One message of a listing, a cell for each of :data:`LIST_COLUMNS`."""
    return (
        str(row.id),
        row.status.value,
        clip(row.stream, 64, escape),
        str(row.attempts),
        utc_time(row.created_at),
        utc_time(row.due_at),
        recipients_cell(row.recipients, escape),
        clip(row.subject, 40, escape),
        clip(row.last_error, 50, escape),
    )


def row_json(row: MessageRow) -> dict[str, Any]:
    """One message of a listing as JSON-ready values."""
    return {**asdict(row), "status": row.status.value, "recipients": list(row.recipients)}


def message_headers(data: bytes) -> list[tuple[str, str]]:
    """Every header field of the stored message, in order, decoded (RFC 2047 words too)."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    return [(name, str(value)) for name, value in parsed.items()]


@dataclass(frozen=True, slots=True)
class AttachedFile:
    """A part of a message that is a file, as a listing shows it (its bytes left out)."""

    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    inline: bool


@dataclass(frozen=True, slots=True)
class MessageParts:
    """What a stored message says, for people: its text and html bodies and its files."""

    text: str | None
    html: str | None
    attachments: tuple[AttachedFile, ...]


def message_parts(data: bytes) -> MessageParts:
    """The first ``text/plain`` and ``text/html`` body of the stored message, decoded, and
    every other leaf part as a file. A part that cannot be decoded is listed as a file, never
    dropped: what is shown must account for every byte that would be sent."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    text = html = None
    files: list[AttachedFile] = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        body: str | None = None
        if content_type in ("text/plain", "text/html") and disposition != "attachment":
            try:
                body = str(part.get_content())
            except (LookupError, ValueError):
                body = None
        if body is not None and content_type == "text/plain" and text is None:
            text = body
        elif body is not None and content_type == "text/html" and html is None:
            html = body
        else:
            payload = part.get_payload(decode=True)
            files.append(
                AttachedFile(
                    filename=part.get_filename(),
                    content_type=content_type,
                    size=len(payload) if isinstance(payload, bytes) else 0,
                    content_id=part.get("Content-ID"),
                    inline=disposition == "inline",
                )
            )
    return MessageParts(text, html, tuple(files))


def consent_summary(detail: MessageDetail) -> str:
    """What the suppression check at claim looks at for this message, in words."""
    if detail.consent_scopes is None:
        return "plain send: checked against scope all, as mail the recipient may not turn off"
    scopes = ", ".join(detail.consent_scopes)
    if detail.consent_required:
        return f"scopes {scopes}; the recipient may not turn it off"
    return f"scopes {scopes}; the recipient may opt out"


def detail_json(detail: MessageDetail, tries: Sequence[AttemptRow]) -> dict[str, Any]:
    """One message with its headers and send log as JSON-ready values (its bytes left out:
    ``size`` says how many)."""
    headers = message_headers(detail.data)
    fields = asdict(detail)
    del fields["data"]
    return {
        **fields,
        "status": detail.status.value,
        "recipients": list(detail.recipients),
        "size": len(detail.data),
        # The common fields always present as keys (null when absent); every field, in
        # order and repeated ones too, in header_fields.
        "headers": {**dict.fromkeys(COMMON_HEADERS), **dict(headers)},
        "header_fields": [[name, value] for name, value in headers],
        "attempts_log": [asdict(attempt) for attempt in tries],
    }

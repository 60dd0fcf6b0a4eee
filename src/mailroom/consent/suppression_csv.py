"""The suppression list as CSV, for ``mailroom suppressions import|export`` and the admin
pages' upload and download, and the expiry times people type.

A file to import is read a record at a time by :mod:`mailroom.csv_lines`, each line at most
:data:`MAX_LINE` characters, so a file of any size (or one with no line breaks at all) is read
in bounded memory. Every row that cannot be imported is reported with its line number and
why; none is dropped silently.

Columns: ``address[,scope,reason,expires_at,note]``. A first row whose every cell is a
column name is a header and may name the columns in any order (``created_at``, which export
writes, is read and ignored). Empty cells take the defaults (scope ``all``, reason ``manual``,
no expiry).

A spreadsheet runs a cell starting with ``=``, ``+``, ``-``, ``@``, a TAB or a CR as a
formula, and an address or a note may start so (``-`` and ``=`` are valid in an address).
Export writes such a cell with one ``'`` before it (a spreadsheet shows the text as it is);
import takes that one ``'`` off again, so an exported file imports as the same entries. A
cell that already starts with ``'`` before such a character gets one more, so nothing
written is ever changed by the round trip.

Expiry times are refused outside :data:`EARLIEST`..:data:`LATEST` (a time no date can show
would break ``list`` and ``export`` later).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import _csv

from mailroom.consent.listing import SuppressionEntry
from mailroom.consent.scopes import SCOPE_ALL, check_scope, normalize_address
from mailroom.csv_lines import MAX_LINE, Rejected, read_records, undecodable
from mailroom.errors import MailroomError, MessageError
from mailroom.outbox.vocabulary import SuppressionReason

__all__ = [
    "COLUMNS",
    "EARLIEST",
    "LATEST",
    "MAX_LINE",
    "NOTE_MAX",
    "CsvHeaderError",
    "ImportRow",
    "Rejected",
    "check_note",
    "export_header",
    "export_row",
    "export_writer",
    "iso_time",
    "parse_expiry",
    "read_rows",
]

COLUMNS = ("address", "scope", "reason", "expires_at", "note")
"""What an import reads, in this order when the file has no header."""
_READ_AND_IGNORED = ("created_at",)
NOTE_MAX = 1000
_RELATIVE = re.compile(r"\+(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest expiry accepted (an expiry before it is a mistake, not a date)."""
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""The latest expiry accepted: the last second a date can show."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvHeaderError(MailroomError, ValueError):
    """The file's header names a column an import does not know: nothing is imported."""


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A row that can be imported, checked and normalised."""

    line: int
    address: str
    scope: str
    reason: SuppressionReason
    expires_at: float | None
    note: str | None


def read_rows(stream: IO[str], now: float) -> Iterator[ImportRow | Rejected]:
    """Each row of an import file, checked: an :class:`ImportRow` or a :class:`Rejected`.

    ``stream`` is opened with ``newline=""`` (quoted cells may hold line breaks) and
    ``errors="surrogateescape"`` (a row that is not UTF-8 is then reported, not fatal).
    Raises :class:`CsvHeaderError` before any row if the header names an unknown column.
    """
    columns: tuple[str, ...] = COLUMNS
    first = True
    for start, where, cells, problem in read_records(stream):
        if cells is None:
            yield Rejected(where, problem or "")
            first = False
            continue
        if not any(cell.strip() for cell in cells):
            continue  # an empty line holds no entry
        names = [cell.strip().lower() for cell in cells]
        if first and all(n in COLUMNS or n in _READ_AND_IGNORED for n in names):
            columns = _header(cells)
            first = False
            continue
        row = _row(where, start, cells, columns, now)
        if first and isinstance(row, Rejected) and "address" in names:
            unknown = ", ".join(repr(n) for n in names if n not in COLUMNS + _READ_AND_IGNORED)
            row = Rejected(
                row.line,
                f"{row.why} (if this is a header: {unknown} is not a column; the columns are "
                f"{', '.join(COLUMNS)})",
            )
        first = False
        yield row


def _header(cells: list[str]) -> tuple[str, ...]:
    names = tuple(cell.strip().lower() for cell in cells)
    unknown = [n for n in names if n not in COLUMNS and n not in _READ_AND_IGNORED]
    if unknown or len(set(names)) != len(names):
        shown = ", ".join(repr(n) for n in unknown) or "a column named twice"
        raise CsvHeaderError(
            f"the header has {shown}; the columns are {', '.join(COLUMNS)} "
            f"(and {', '.join(_READ_AND_IGNORED)}, ignored); nothing was imported"
        )
    return names


def _row(
    where: str, line: int, cells: list[str], columns: tuple[str, ...], now: float
) -> ImportRow | Rejected:
    if len(cells) > len(columns):
        return Rejected(where, f"{len(cells)} cells, but only {len(columns)} columns")
    values = dict(zip(columns, (_unescaped(cell.strip()) for cell in cells), strict=False))
    if undecodable(cells):
        return Rejected(where, "not valid UTF-8 (save the file as UTF-8)")
    address = values.get("address", "")
    try:
        if not address:
            raise MessageError("address", "empty")
        reason_text = values.get("reason") or SuppressionReason.MANUAL.value
        if reason_text not in {reason.value for reason in SuppressionReason}:
            known = ", ".join(r.value for r in SuppressionReason)
            raise MessageError("reason", f"{reason_text!r} is not one of {known}")
        return ImportRow(
            line=line,
            address=normalize_address(address),
            scope=check_scope(values.get("scope") or SCOPE_ALL),
            reason=SuppressionReason(reason_text),
            expires_at=parse_expiry(values.get("expires_at", ""), now, field="expires_at"),
            note=check_note(values.get("note") or None, field="note"),
        )
    except MessageError as exc:
        return Rejected(where, f"{address!r}: {exc}" if address else str(exc))


def check_note(note: str | None, *, field: str) -> str | None:
    """A note to keep with an entry: at most :data:`NOTE_MAX` characters."""
    if note is not None and len(note) > NOTE_MAX:
        raise MessageError(field, f"at most {NOTE_MAX} characters (got {len(note)})")
    return note


def parse_expiry(text: str, now: float, *, field: str, future_only: bool = False) -> float | None:
    """An expiry as people write it: empty (none), ``+30d`` / ``+12h`` / ``+90m`` / ``+2w``
    from ``now``, an ISO date (``2026-12-31``: its start, UTC) or an ISO date and time
    (UTC unless it says otherwise). With ``future_only``, a time already past is refused."""
    text = text.strip()
    if not text:
        return None
    relative = _RELATIVE.fullmatch(text)
    if relative:
        delta = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
        return _in_range(
            text, now + delta.total_seconds(), now, field=field, future_only=future_only
        )
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MessageError(
            field,
            f"{text!r} is not a time: give +30d (or +12h, +90m, +2w), a date (2026-12-31) "
            "or a date and time (2026-12-31T18:00:00Z)",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        expires = parsed.timestamp()
    except (OverflowError, ValueError):  # before year 1 or after 9999 once in UTC
        expires = float("nan")
    return _in_range(text, expires, now, field=field, future_only=future_only)


def _in_range(text: str, expires: float, now: float, *, field: str, future_only: bool) -> float:
    if not EARLIEST.timestamp() <= expires <= LATEST.timestamp():  # NaN too
        raise MessageError(
            field,
            f"{text!r} is out of range: give a time between {EARLIEST:%Y-%m-%d} and "
            f"{LATEST:%Y-%m-%d} (UTC)",
        )
    if future_only and expires <= now:
        raise MessageError(field, f"{text!r} has already passed")
    return expires


def iso_time(epoch: float | None) -> str:
    """``2026-12-31T18:00:00Z``, or empty for no time (as export writes times). A time no
    date can show (stored before such times were refused) is written as the raw number: an
    import then reports that row rather than the export failing half-way."""
    if epoch is None:
        return ""
    try:
        shown = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return repr(epoch)
    return shown.replace("+00:00", "Z")


def export_writer(out: IO[str]) -> _csv.Writer:
    """The CSV writer export uses. Lines end in CRLF (RFC 4180): :mod:`csv` quotes a cell
    holding any character of the line ending, so a note with a lone CR is quoted, not cut."""
    return csv.writer(out, lineterminator="\r\n")


def export_header() -> list[str]:
    """The header export writes: the import columns, then ``created_at``."""
    return [*COLUMNS, *_READ_AND_IGNORED]


def export_row(entry: SuppressionEntry) -> list[str]:
    """One entry as an export row (read back by an import as the same entry)."""
    return [
        _escaped(entry.address),
        _escaped(entry.scope),
        entry.reason.value,
        iso_time(entry.expires_at),
        _escaped(entry.note or ""),
        iso_time(entry.created_at),
    ]


def _runs_as_formula(cell: str) -> bool:
    """Whether a spreadsheet would run ``cell`` (or take its ``'`` as export's escape)."""
    rest = cell.lstrip("'")
    return rest[:1] in _FORMULA_START


def _escaped(cell: str) -> str:
    """``cell`` as export writes it: with one ``'`` first when it would run as a formula."""
    return f"'{cell}" if _runs_as_formula(cell) else cell


def _unescaped(cell: str) -> str:
    """The cell export escaped, as it was: its one leading ``'`` taken off."""
    return cell[1:] if cell.startswith("'") and _runs_as_formula(cell[1:]) else cell

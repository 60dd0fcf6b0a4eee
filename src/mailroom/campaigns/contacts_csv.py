"""Reading a CSV file of contacts (``mailroom lists import``): each row a contact to write or a
:class:`~mailroom.csv_lines.Rejected` naming its line and why. Nothing is dropped silently;
only empty lines are skipped, and counted.

The format:

- UTF-8 (a BOM, as spreadsheets write, is skipped); lines up to
  :data:`~mailroom.csv_lines.MAX_LINE` characters; read a record at a time
  (:mod:`mailroom.csv_lines`), so a file of any size is read in bounded memory.
- The first row is a header naming the columns. The address column is ``email`` or
  ``address``; ``name`` is optional; every other column is an attribute, the column's name its
  key (``{{ contact.city }}``; see :mod:`mailroom.campaigns.contacts` for what a key may be).
  ``email``, ``address`` and ``name`` are recognised in any case; attribute names are kept as
  written. A header with no address column, or both, a column named twice, a column with no
  name or a name no attribute can have refuses the whole file
  (:class:`CsvFileRefusedError`): nothing is imported.
- Every row has as many cells as the header has columns (a row with more or fewer is
  rejected: its cells cannot be matched to columns). Cells are read without the blanks around
  them. The address is normalised (lower-case addr-spec); ``Ada <ada@example.com>`` is read
  too, its name used when the row has no name of its own.
- A column sets its field for every contact of the file: an empty attribute cell sets ``""``
  (so that every contact the file adds has every column, as a campaign's merge fields
  expect), an empty name cell leaves the contact without a name. A field the file has no
  column for is left as it is on a contact already in the list.

Duplicates (an address on two rows) are found by :mod:`mailroom.campaigns.contacts_import`,
which sees the whole file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import IO, Literal, NamedTuple

from mailroom.campaigns.contacts import (
    KEEP,
    MAX_ATTRIBUTES,
    Keep,
    check_attribute_key,
    check_contact_name,
    parse_contact_address,
)
from mailroom.csv_lines import CsvRecord, Rejected, read_records, undecodable
from mailroom.errors import MailroomError, MessageError

__all__ = [
    "ADDRESS_COLUMNS",
    "NAME_COLUMN",
    "Columns",
    "ContactRow",
    "ContactsFile",
    "CsvFileRefusedError",
]

ADDRESS_COLUMNS = ("email", "address")
"""What the address column may be called (one of them)."""
NAME_COLUMN = "name"
_EXAMPLE = "email,name,city"
_SHOWN = 6  # header cells an error shows
_UNSTORABLE = re.compile("[\x00\udc80-\udcff]")  # a NUL, or a byte that was not UTF-8


class CsvFileRefusedError(MailroomError, ValueError):
    """The file as a whole cannot be imported (its header is wrong, or there is none):
    nothing was imported."""


class Columns(NamedTuple):
    """What the header says: where each field is."""

    address: int
    address_name: str
    """The address column's name, as errors name it."""
    name: int | None
    attributes: tuple[tuple[str, int], ...]
    """(key, column) of each attribute."""
    width: int
    """How many columns: the cells every row has."""


class ContactRow(NamedTuple):
    """A row that can be written: a change to one contact
    (:class:`~mailroom.campaigns.contacts.ContactChange`), with the line it starts on."""

    line: int
    address: str
    name: str | Literal[Keep.KEEP] | None
    attributes: dict[str, str]


class ContactsFile:
    """A CSV file of contacts, its header read (so a refused file is known before anything is
    written); iterate it for its rows. ``stream`` is opened with ``newline=""`` and
    ``errors="surrogateescape"`` (see :mod:`mailroom.csv_lines`)."""

    def __init__(self, stream: IO[str]) -> None:
        self._records = read_records(stream)
        self.blank_lines = 0
        """Empty lines met so far: not rows, skipped."""
        self.columns = self._header()

    def _header(self) -> Columns:
        for record in self._records:
            if record.cells is not None and not any(cell.strip() for cell in record.cells):
                self.blank_lines += 1
                continue
            return _columns(record)
        raise _refused(f"the file is empty: its first row must name the columns (e.g. {_EXAMPLE})")

    def __iter__(self) -> Iterator[ContactRow | Rejected]:
        columns = self.columns
        for record in self._records:
            cells = record.cells
            if cells is None:
                yield Rejected(record.where, record.problem or "")
                continue
            if len(cells) != columns.width:
                if not any(cell.strip() for cell in cells):
                    self.blank_lines += 1
                    continue
                yield Rejected(
                    record.where,
                    f"{len(cells)} cells, but the header has {columns.width} columns (a cell "
                    "holding a comma must be in double quotes)",
                )
                continue
            row = _row(record.start, record.where, cells, columns)
            if row is None:
                self.blank_lines += 1  # a row of empty cells, as spreadsheets write at the end
                continue
            yield row


def _row(line: int, where: str, cells: list[str], columns: Columns) -> ContactRow | Rejected | None:
    """The row's contact, or why it is rejected; ``None`` for a row of empty cells."""
    if _UNSTORABLE.search("".join(cells)):
        if undecodable(cells):
            return Rejected(where, "not valid UTF-8 (save the file as UTF-8)")
        return Rejected(where, "holds a NUL character, which cannot be stored")
    given = cells[columns.address].strip()
    if not given:
        if not any(cell.strip() for cell in cells):
            return None
        return Rejected(where, f"no address (the {columns.address_name} cell is empty)")
    try:
        address, display_name = parse_contact_address(given, columns.address_name)
        name: str | Literal[Keep.KEEP] | None = KEEP
        if columns.name is not None:
            name = check_contact_name(cells[columns.name], NAME_COLUMN)
        if display_name and (name is None or name is KEEP):
            name = check_contact_name(display_name, columns.address_name)
    except MessageError as exc:
        return Rejected(where, str(exc))
    attributes = {key: cells[index].strip() for key, index in columns.attributes}
    return ContactRow(line, address, name, attributes)


def _columns(record: CsvRecord) -> Columns:
    """The header's columns, or :class:`CsvFileRefusedError` saying what is wrong with it."""
    if record.cells is None:
        raise _refused(f"line {record.where}: {record.problem}")
    cells = [cell.strip() for cell in record.cells]
    if undecodable(cells):
        raise _refused("the header is not valid UTF-8 (save the file as UTF-8)")
    known = [
        cell.lower() if cell.lower() in (*ADDRESS_COLUMNS, NAME_COLUMN) else cell for cell in cells
    ]
    addresses = [index for index, cell in enumerate(known) if cell in ADDRESS_COLUMNS]
    if not addresses:
        shown = ", ".join(repr(cell) for cell in cells[:_SHOWN])
        more = ", ..." if len(cells) > _SHOWN else ""
        raise _refused(
            f"the header ({shown}{more}) has no {ADDRESS_COLUMNS[0]!r} or "
            f"{ADDRESS_COLUMNS[1]!r} column; the first row must name the columns "
            f"(e.g. {_EXAMPLE})"
        )
    if len(addresses) > 1:
        raise _refused("the header has both 'email' and 'address': which is the address?")
    twice = sorted(cell for cell, count in Counter(known).items() if count > 1)
    if twice:
        named = ", ".join(repr(cell) for cell in twice[:_SHOWN])
        raise _refused(f"the header names {named} twice: which column is meant?")
    attributes: list[tuple[str, int]] = []
    for index, cell in enumerate(known):
        if index == addresses[0] or cell == NAME_COLUMN:
            continue
        if not cell:
            raise _refused(f"column {index + 1} of the header has no name: name it or delete it")
        try:
            attributes.append((check_attribute_key(cell, f"column {cell!r}"), index))
        except MessageError as exc:
            raise _refused(f"the header's {exc}") from None
    if len(attributes) > MAX_ATTRIBUTES:
        raise _refused(f"{len(attributes)} attribute columns; at most {MAX_ATTRIBUTES}")
    name = known.index(NAME_COLUMN) if NAME_COLUMN in known else None
    return Columns(addresses[0], known[addresses[0]], name, tuple(attributes), len(cells))


def _refused(why: str) -> CsvFileRefusedError:
    return CsvFileRefusedError(f"{why}; nothing was imported")

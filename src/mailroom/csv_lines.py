"""Reading a CSV file people give us a record at a time, in bounded memory: what the
suppression list's import and the mailing lists' contact import share.

Each line is read with a bound (:data:`MAX_LINE` characters), so a file of any size, or one
with no line breaks at all, is read in bounded memory: a longer line is skipped without being
held, and reported. Each record comes with the lines it spans (a quoted cell may hold line
breaks), so every row an import rejects is named where a person finds it in an editor.

The stream is opened with ``newline=""`` (for :mod:`csv`) and ``errors="surrogateescape"``:
bytes that are not UTF-8 then become lone surrogates, which :func:`undecodable` finds, so such
a row is reported rather than the whole file failing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, NamedTuple

__all__ = ["MAX_LINE", "CsvRecord", "Rejected", "read_records", "undecodable"]

MAX_LINE = 8192
"""The longest line (in characters) an import reads; a longer one is reported and skipped."""

_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape made of a non-UTF-8 byte


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that cannot be imported: where it is and why."""

    line: str
    """The line number, or ``first-last`` for a row that spans lines."""
    why: str


class CsvRecord(NamedTuple):
    """One record of the file: its cells, or why it could not be read."""

    start: int
    """The line it starts on (from 1)."""
    where: str
    """The line, or ``first-last`` for a record over several lines: as a report names it."""
    cells: list[str] | None
    """``None`` when the record could not be read (``problem`` says why)."""
    problem: str | None


class _OverlongLineError(Exception):
    pass


class _Lines:
    """A text file's lines, each at most MAX_LINE characters, counted."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._stream.readline(MAX_LINE + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE and not line.endswith("\n"):
            while (rest := self._stream.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass  # skip the rest of this line without holding it
            raise _OverlongLineError
        return line


def read_records(stream: IO[str]) -> Iterator[CsvRecord]:
    """Every record of ``stream`` in order, an empty line as a record of no cells."""
    lines = _Lines(stream)
    reader = csv.reader(lines)
    while True:
        start = lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _OverlongLineError:
            problem = f"a line over {MAX_LINE} characters"
            yield CsvRecord(start, _span(start, lines.number), None, problem)
            continue
        except csv.Error as exc:
            yield CsvRecord(start, _span(start, lines.number), None, f"not valid CSV ({exc})")
            continue
        end = lines.number
        yield CsvRecord(start, str(end) if end <= start else f"{start}-{end}", cells, None)


def _span(start: int, end: int) -> str:
    return str(end) if end <= start else f"{start}-{end}"


def undecodable(cells: Sequence[str]) -> bool:
    """Whether any cell holds bytes that were not UTF-8 (see the module's docstring)."""
    return any(_UNDECODABLE.search(cell) for cell in cells)

"""Writing a CSV file of contacts into a list: what ``mailroom lists import`` calls (and the
admin's upload, later), so a file imports the same wherever it is given.

The rows come checked from :class:`~mailroom.campaigns.contacts_csv.ContactsFile`. Here they
are deduplicated across the whole file (the first row of an address is imported; each later
one is rejected, naming the line it repeats) and written :data:`IMPORT_BATCH` rows to a
transaction through :func:`~mailroom.campaigns.contacts.write_contacts`: an address already
in the list is updated (counted as updated, not rejected). Each rejected row is handed to
``report`` with its line and why, in the order of the file.

Memory stays bounded however long the file is: rows are read a record at a time, one batch
is read while the one before it is written, and the addresses already met are kept with
their line by :class:`~mailroom.campaigns.seen_addresses.SeenAddresses` (a dict, then a
private temporary SQLite database). The batches are written on a thread of their own, so
that reading and checking the next batch (Python) and writing this one (the database, which
lets go of the GIL) overlap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from mailroom.campaigns.contacts import PreparedWrite, prepare_write, write_prepared
from mailroom.campaigns.contacts_csv import ContactRow, ContactsFile
from mailroom.campaigns.lists import find_list
from mailroom.campaigns.seen_addresses import SEEN_IN_MEMORY, SeenAddresses
from mailroom.csv_lines import Rejected
from mailroom.outbox import list_queries as q

__all__ = ["IMPORT_BATCH", "WRITE_CACHE_KIB", "ImportResult", "import_contacts"]

IMPORT_BATCH = 20_000
"""Rows an import writes per transaction. Each batch writes again every page of the
addresses' index it touches, and a list's addresses come in no order, so larger batches write
fewer pages a row: a million-row import took 15 % less CPU at 20,000 rows than at 5,000. On
SQLite a batch holds the one write lock for about a quarter of a second."""
WRITE_CACHE_KIB = 64 * 1024
"""SQLite's page cache for the connection an import writes with (2 MB by default)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did."""

    imported: int
    """New contacts."""
    updated: int
    """Contacts already in the list, updated from their row."""
    rejected: int
    """Rows not imported, each handed to ``report``."""
    blank_lines: int
    """Empty lines (and rows of empty cells): not rows, skipped."""


def import_contacts(
    engine: Engine,
    list_name: str,
    file: ContactsFile,
    *,
    report: Callable[[Rejected], None],
    batch_size: int = IMPORT_BATCH,
    seen_in_memory: int = SEEN_IN_MEMORY,
    clock: Callable[[], float] = time.time,
) -> ImportResult:
    """Import every row of ``file`` that can be into the list named ``list_name``
    (:class:`~mailroom.campaigns.lists.ListNotFoundError` if there is none); hand each rejected
    one to ``report`` (from the thread that writes). The batches written before an error (of
    the database, say) stay written."""
    with engine.connect() as connection:
        list_id = find_list(connection, list_name).id
    rows: list[ContactRow] = []
    rejected: list[Rejected] = []
    with SeenAddresses(seen_in_memory) as seen, _Writer(engine, list_id, report, clock) as writer:
        for item in file:
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                rows.append(item)
            if len(rows) + len(rejected) >= batch_size:
                writer.write(*_deduplicated(seen, rows, rejected))
                rows, rejected = [], []
        writer.write(*_deduplicated(seen, rows, rejected))
    return ImportResult(writer.imported, writer.updated, writer.rejected, file.blank_lines)


def _deduplicated(
    seen: SeenAddresses, rows: list[ContactRow], rejected: list[Rejected]
) -> tuple[list[ContactRow], list[Rejected]]:
    """The rows of one batch whose address the file has not had before (the others added to
    ``rejected``, naming the line they repeat), remembered in ``seen``."""
    earlier = seen.first_lines(row.address for row in rows)
    unique: dict[str, ContactRow] = {}
    for row in rows:
        first = earlier.get(row.address)
        if first is None and row.address in unique:
            first = unique[row.address].line
        if first is None:
            unique[row.address] = row
        else:
            rejected.append(Rejected(str(row.line), f"{row.address} is already on line {first}"))
    changes = list(unique.values())
    seen.add(changes)
    return changes, rejected


class _Writer:
    """Writes the batches, each in a transaction, on a thread of its own while the next one is
    read: SQLite and psycopg let go of the GIL while the database works, so reading and
    writing overlap. One batch is written while one is read, no more, so memory stays two
    batches' worth. The rejected rows of each batch are reported once it is written, in the
    file's order. One connection writes them all, its SQLite page cache widened to
    :data:`WRITE_CACHE_KIB` for the import and set back after."""

    def __init__(
        self,
        engine: Engine,
        list_id: int,
        report: Callable[[Rejected], None],
        clock: Callable[[], float],
    ) -> None:
        self._connection = engine.connect()
        self._dialect = engine.dialect
        self._cache_before: int | None = None
        self._list_id = list_id
        self._report = report
        self._clock = clock
        self._threads = ThreadPoolExecutor(1, thread_name_prefix="mailroom-import")
        self._pending: Future[None] | None = None
        self.imported = self.updated = self.rejected = 0

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if self._pending is not None and kind is None:
                self._pending.result()  # its error, if it had one, is the import's
        finally:
            self._threads.shutdown(wait=True)  # a batch being written is finished first
            try:
                if self._cache_before is not None and not self._connection.invalidated:
                    with self._connection.begin():
                        q.sqlite_cache_size(self._connection, self._cache_before)
            finally:
                self._connection.close()

    def write(self, rows: list[ContactRow], rejected: list[Rejected]) -> None:
        """Hand over one batch, once the one before it is written. Its statements are built
        here, on the reading thread, so that the writing thread runs the database, which
        lets go of the GIL, and little Python, which would wait for it."""
        prepared = prepare_write(self._dialect, self._list_id, rows, self._clock())
        if self._pending is not None:
            self._pending.result()
        self._pending = self._threads.submit(self._write, prepared, rows, rejected)

    def _write(
        self, prepared: PreparedWrite, rows: list[ContactRow], rejected: list[Rejected]
    ) -> None:
        if rows:
            with self._connection.begin():
                if self._cache_before is None:
                    self._cache_before = q.sqlite_cache_size(self._connection, -WRITE_CACHE_KIB)
                outcome = write_prepared(self._connection, prepared)
            self.imported += outcome.created
            self.updated += outcome.updated
            for index, error in outcome.refused.items():
                row = rows[index]
                rejected.append(Rejected(str(row.line), f"{row.address}: {error}"))
        rejected.sort(key=_first_line)
        self.rejected += len(rejected)
        for item in rejected:
            self._report(item)


def _first_line(rejected: Rejected) -> int:
    return int(rejected.line.partition("-")[0])

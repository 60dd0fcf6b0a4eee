"""The addresses a CSV import has met so far, each with the line it was first met on: how an
import of any length names the line a duplicate repeats, in bounded memory.

Up to ``in_memory`` addresses are kept in a dict (about 150 bytes each, the fastest lookup).
Past that they move into a private temporary SQLite database, which SQLite keeps in its page
cache (:data:`CACHE_KIB`) and in a file of its own, removed when closed, once it is larger.
There an address is kept as two 64-bit hashes of it (the key, and a check) and its line:
about 30 bytes, a quarter of what the address itself would take, so the table stays in the
cache for millions of rows, and a lookup by an integer key costs a fifth of one by the text.
Two addresses whose 128 bits both agree are taken for one (about one chance in 10^25 for a
file of a million addresses); two that share only the key are both kept, the second in the
dict.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Protocol

from mailroom.outbox.list_queries import in_pieces

__all__ = ["CACHE_KIB", "SEEN_IN_MEMORY", "SeenAddresses"]

SEEN_IN_MEMORY = 250_000
"""Addresses kept in the dict (about 40 MB) before they move to SQLite."""
CACHE_KIB = 32 * 1024
"""The page cache of the temporary database: about a million addresses."""
_PIECES = (500, 100, 10, 1)  # keys per lookup: within the 999 parameters of SQLite before 3.32


class _Row(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def line(self) -> int: ...


def _key(address: str) -> int:
    """The key an address is kept by: its hash (64 bits, Python's SipHash of the text)."""
    return hash(address)


def _check(address: str) -> int:
    """A second hash, independent of the key: of another string."""
    return hash(address + "\x00")


class SeenAddresses:
    """The addresses met so far, with the line each was first met on (see the module)."""

    def __init__(self, in_memory: int = SEEN_IN_MEMORY) -> None:
        self._in_memory = in_memory
        self._lines: dict[str, int] = {}
        """All of them until they move to SQLite; after, those whose key another has."""
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> SeenAddresses:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()

    @property
    def spilled(self) -> bool:
        """Whether the addresses have moved to SQLite."""
        return self._db is not None

    def first_lines(self, addresses: Iterable[str]) -> dict[str, int]:
        """The line each of ``addresses`` was first met on, for those met before."""
        lines = self._lines
        found: dict[str, int] = {}
        wanted: dict[int, list[str]] = {}
        for address in addresses:
            if address in lines:
                found[address] = lines[address]
            elif self._db is not None:
                wanted.setdefault(_key(address), []).append(address)
        for key, check, line in self._stored(list(wanted)):
            for address in wanted[key]:
                if _check(address) == check:
                    found[address] = line
        return found

    def add(self, rows: Sequence[_Row]) -> None:
        """Remember ``rows``: none of their addresses met before, none twice among them."""
        if self._db is None:
            self._lines.update((row.address, row.line) for row in rows)
            if len(self._lines) > self._in_memory:
                self._spill()
            return
        self._insert([(row.address, row.line) for row in rows])

    def _spill(self) -> None:
        # "": a temporary database, private to this connection (not the outbox's database).
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")  # nothing to recover: it dies with us
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.execute(
            "CREATE TABLE seen (key INTEGER PRIMARY KEY, checked INTEGER NOT NULL, "
            "line INTEGER NOT NULL)"
        )
        pairs, self._lines = list(self._lines.items()), {}
        self._insert(pairs)

    def _insert(self, pairs: Iterable[tuple[str, int]]) -> None:
        assert self._db is not None  # noqa: S101 - only once spilled
        entries: dict[int, tuple[int, int, int]] = {}
        owners: dict[int, str] = {}
        for address, line in pairs:
            key = _key(address)
            if key in entries:  # another address of this batch has the key: keep it aside
                self._lines[address] = line
            else:
                entries[key] = (key, _check(address), line)
                owners[key] = address
        self._db.execute("BEGIN")
        # In key order, so each page of the table is visited once per batch.
        added = self._db.executemany(
            "INSERT OR IGNORE INTO seen (key, checked, line) VALUES (?, ?, ?)",
            sorted(entries.values()),
        ).rowcount
        self._db.execute("COMMIT")
        if added < len(entries):  # an address met before has the key of one of these
            for key, check, line in self._stored(list(entries)):
                if (key, check, line) != entries[key]:
                    self._lines[owners[key]] = entries[key][2]

    def _stored(self, keys: list[int]) -> list[tuple[int, int, int]]:
        if self._db is None or not keys:
            return []
        found: list[tuple[int, int, int]] = []
        for chunk in in_pieces(keys, _PIECES):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, checked, line FROM seen WHERE key IN ({marks})"  # noqa: S608
            found += self._db.execute(sql, chunk).fetchall()
        return found

"""Every query on mailing lists and their contacts, named and kept together.

As in :mod:`mailroom.outbox.queries`, each function takes an open connection inside a
transaction the caller owns. Addresses are stored normalised (the lower-case addr-spec) and
the callers normalise them; attributes go in as JSON text the callers made and checked.

A contact's id is the key a campaign's fan-out pages a list by (:func:`contact_page`): a
contact keeps its id when it is updated, so a page read after a checkpoint repeats no one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.engine import Dialect

from mailroom.outbox.schema import contacts, mailing_lists

__all__ = [
    "ContactValues",
    "PreparedRows",
    "StoredContact",
    "contact_page",
    "contact_row",
    "contacts_by_address",
    "count_contacts",
    "delete_contacts",
    "delete_list",
    "in_pieces",
    "insert_list",
    "last_contact_id",
    "list_row",
    "lists_with_counts",
    "prepare_rows",
    "sqlite_cache_size",
    "update_contact",
    "write_rows",
]

ContactValues = tuple[str, str | None, str]
"""A contact as :func:`prepare_rows` writes it: (address, name, attributes as JSON text)."""

_PIECES = (5000, 1000, 100, 10, 1)
"""The sizes a run of rows is cut into, one statement each (see :func:`in_pieces`). At most
30,000 parameters (5,000 rows of 6): within SQLite's 32,766 (3.32+) and PostgreSQL's 65,535.
Few, large statements: an import's writes run on a thread of their own, and each statement
that ends must win the GIL back from the thread reading the file."""
T = TypeVar("T")


def in_pieces(items: Sequence[T], sizes: Sequence[int] = _PIECES) -> Iterator[Sequence[T]]:
    """``items`` cut into pieces of a few fixed sizes, the largest first (``sizes`` ends in 1).

    A statement for each piece, so a handful of statement texts in all: the driver prepares
    each once and keeps it, where a statement for every remainder's size would be another
    text, and SQLite's statement cache (128 a connection) kept dozens of them, megabytes
    each for a VALUES list of thousands of rows (a million-row import grew by 150 MB).
    """
    start = 0
    for size in sizes:
        while len(items) - start >= size:
            yield items[start : start + size]
            start += size


_CONTACT_COLUMNS = (
    contacts.c.id,
    contacts.c.list_id,
    contacts.c.address,
    contacts.c.name,
    contacts.c.attributes,
    contacts.c.created_at,
    contacts.c.updated_at,
)


# -- lists ----------------------------------------------------------------------------------


def insert_list(connection: Connection, *, name: str, description: str | None, now: float) -> int:
    """Create a list; its id. A name already taken raises the driver's ``IntegrityError``."""
    result = connection.execute(
        mailing_lists.insert().values(name=name, description=description, created_at=now)
    )
    key = result.inserted_primary_key
    assert key is not None  # noqa: S101 - an insert of one row always has one
    return int(key[0])


def list_row(connection: Connection, name: str) -> Mapping[str, Any] | None:
    """The list named ``name`` (id, name, description, created_at), if there is one."""
    row = connection.execute(select(mailing_lists).where(mailing_lists.c.name == name)).first()
    return None if row is None else dict(row._mapping)


def count_contacts(connection: Connection, list_id: int) -> int:
    """How many contacts the list has (read off the index on (list_id, id))."""
    return int(
        connection.execute(
            select(func.count()).select_from(contacts).where(contacts.c.list_id == list_id)
        ).scalar_one()
    )


def lists_with_counts(connection: Connection) -> list[Mapping[str, Any]]:
    """Every list by name, each with ``contacts``: how many it has."""
    counts = (
        select(contacts.c.list_id, func.count().label("contacts"))
        .group_by(contacts.c.list_id)
        .subquery()
    )
    rows = connection.execute(
        select(mailing_lists, func.coalesce(counts.c.contacts, 0).label("contacts"))
        .select_from(mailing_lists.outerjoin(counts, counts.c.list_id == mailing_lists.c.id))
        .order_by(mailing_lists.c.name)
    )
    return [dict(row._mapping) for row in rows]


def delete_list(connection: Connection, list_id: int) -> int:
    """Delete a list and its contacts; how many contacts went with it.

    The contacts are deleted here rather than left to the foreign key's ``ON DELETE CASCADE``:
    a SQLite connection that another program opened (without ``PRAGMA foreign_keys``) would
    leave them behind.
    """
    removed = connection.execute(delete(contacts).where(contacts.c.list_id == list_id)).rowcount
    connection.execute(delete(mailing_lists).where(mailing_lists.c.id == list_id))
    return int(removed)


# -- contacts -------------------------------------------------------------------------------


class StoredContact(NamedTuple):
    """What an update of a contact needs to know of it."""

    name: str | None
    attributes: dict[str, Any] | None


def contacts_by_address(
    connection: Connection,
    list_id: int,
    addresses: Sequence[str],
    *,
    lock: bool = False,
    up_to_id: int | None = None,
) -> dict[str, StoredContact]:
    """The contacts of the list among ``addresses``, by address.

    ``lock``: for an update of what was read (``FOR UPDATE`` on PostgreSQL; SQLite's one
    writer, whose transactions begin ``IMMEDIATE``, already excludes every other).
    ``up_to_id``: only the contacts with that id or a lower one (those that were there
    before :func:`write_rows` added more, see :func:`last_contact_id`).
    """
    # Driver-level, like prepare_rows: an import looks up addresses by the thousand, and
    # SQLAlchemy rendered an IN list of bound parameters afresh for each lookup.
    qmark = connection.dialect.paramstyle == "qmark"
    mark = "?" if qmark else "%s"
    found: dict[str, StoredContact] = {}
    for chunk in in_pieces(addresses):
        sql = (
            f"SELECT address, name, attributes FROM {contacts.name} "  # noqa: S608 - our names
            f"WHERE list_id = {mark} AND address IN ({', '.join([mark] * len(chunk))})"
        )
        values: tuple[Any, ...] = (list_id, *chunk)
        if up_to_id is not None:
            sql += f" AND id <= {mark}"
            values += (up_to_id,)
        if lock and not qmark:
            sql += " FOR UPDATE"
        for address, name, attributes in connection.exec_driver_sql(sql, values):
            # SQLite hands JSON back as text; psycopg decodes it.
            decoded = json.loads(attributes) if isinstance(attributes, str) else attributes
            found[address] = StoredContact(name, decoded if isinstance(decoded, dict) else None)
    return found


_WRITE_COLUMNS = ("list_id", "address", "name", "attributes", "created_at", "updated_at")
_WRITE_ROW = f"({', '.join('?' for _ in _WRITE_COLUMNS)})"
_WRITE_HEAD = f"INSERT INTO {contacts.name} ({', '.join(_WRITE_COLUMNS)}) VALUES "  # noqa: S608
# Both dialects spell these alike (SQLite 3.24+).
_IF_NEW = " ON CONFLICT (list_id, address) DO NOTHING"
_OR_UPDATE = (
    " ON CONFLICT (list_id, address) DO UPDATE SET name = excluded.name, "
    "attributes = excluded.attributes, updated_at = excluded.updated_at"
)


def last_contact_id(connection: Connection) -> int:
    """The highest contact id given so far, of any list (0 for none): every contact added
    after it has a higher one (off the primary key: one lookup)."""
    return int(connection.execute(select(func.max(contacts.c.id))).scalar() or 0)


@dataclass(frozen=True, slots=True)
class PreparedRows:
    """Statements writing contacts, in one database's parameter style, made before the
    transaction that runs them (:func:`prepare_rows`)."""

    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    rows: int


def prepare_rows(
    dialect: Dialect,
    list_id: int,
    rows: Sequence[ContactValues],
    now: float,
    *,
    update: bool = False,
) -> PreparedRows:
    """The statements that write ``rows`` to the list at ``now``: adding each address the
    list does not have yet, leaving the others as they are; with ``update``, giving those
    the name and attributes of their row (the caller has merged them with what it read,
    under lock), their ``created_at`` kept. No address may be twice in ``rows``
    (PostgreSQL refuses a statement that would update one row twice)."""
    # Multi-row VALUES with plain tuples, as the outbox's own batch inserts are written: an
    # import writes millions of rows, and SQLAlchemy's per-row parameter dicts cost more
    # than the database's own work; one statement per chunk, not an executemany (which
    # steps once per row). Made apart from running them, so that an import builds the next
    # batch's while the database writes this one.
    tail = _OR_UPDATE if update else _IF_NEW
    statements = []
    for chunk in in_pieces(rows):
        sql = _write_sql(len(chunk), tail, dialect.paramstyle)
        values = tuple(
            chain.from_iterable(
                [
                    (list_id, address, name, attributes, now, now)
                    for address, name, attributes in chunk
                ]
            )
        )
        statements.append((sql, values))
    return PreparedRows(tuple(statements), len(rows))


@functools.lru_cache(maxsize=len(_PIECES) * 4)
def _write_sql(rows: int, tail: str, paramstyle: str) -> str:
    sql = _WRITE_HEAD + ", ".join([_WRITE_ROW] * rows) + tail
    return sql if paramstyle == "qmark" else sql.replace("?", "%s")


def write_rows(connection: Connection, prepared: PreparedRows) -> int:
    """Run :func:`prepare_rows`'s statements in the caller's transaction; how many contacts
    they added or changed."""
    return sum(
        connection.exec_driver_sql(sql, values).rowcount for sql, values in prepared.statements
    )


def contact_row(connection: Connection, list_id: int, address: str) -> Mapping[str, Any] | None:
    """One contact of the list, by its (normalised) address."""
    row = connection.execute(
        select(*_CONTACT_COLUMNS).where(
            contacts.c.list_id == list_id, contacts.c.address == address
        )
    ).first()
    return None if row is None else dict(row._mapping)


def update_contact(
    connection: Connection,
    list_id: int,
    address: str,
    values: Mapping[str, Any],
    now: float,
) -> bool:
    """Set ``values`` (``name``, ``attributes``: decoded) on one contact; whether it exists."""
    result = connection.execute(
        update(contacts)
        .where(contacts.c.list_id == list_id, contacts.c.address == address)
        .values(**values, updated_at=now)
    )
    return bool(result.rowcount)


def delete_contacts(connection: Connection, list_id: int, addresses: Iterable[str]) -> int:
    """Remove the list's contacts with these (normalised) addresses; how many there were."""
    wanted = list(dict.fromkeys(addresses))
    removed = 0
    for chunk in in_pieces(wanted):
        result = connection.execute(
            delete(contacts).where(contacts.c.list_id == list_id, contacts.c.address.in_(chunk))
        )
        removed += int(result.rowcount)
    return removed


def contact_page(
    connection: Connection, list_id: int, *, after_id: int | None, limit: int
) -> list[Mapping[str, Any]]:
    """Up to ``limit`` contacts of the list in id order, from the one after id ``after_id``:
    keyset paging off the index on (list_id, id), so a page costs the same however deep it
    is. (A contact added while a list is paged may get an id below the last one read: on
    PostgreSQL ids are handed out before commit. It is then not in that pass.)"""
    query = (
        select(*_CONTACT_COLUMNS)
        .where(contacts.c.list_id == list_id)
        .order_by(contacts.c.id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(contacts.c.id > after_id)
    return [dict(row._mapping) for row in connection.execute(query)]


def sqlite_cache_size(connection: Connection, size: int) -> int | None:
    """SQLite: set the connection's page cache (``PRAGMA cache_size``: pages, or KiB when
    negative) and return what it was; ``None`` (and nothing done) on another database.

    An import widens it while it writes: the index of a list's addresses takes every write
    at a random place, and past the default cache (2 MB) each one reads its page again.
    """
    if connection.dialect.name != "sqlite":
        return None
    before = int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
    connection.exec_driver_sql(f"PRAGMA cache_size = {int(size)}")
    return before

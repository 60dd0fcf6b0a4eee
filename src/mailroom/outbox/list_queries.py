"""Every query on mailing lists and their contacts, named and kept together.

As in :mod:`mailroom.outbox.queries`, each function takes an open connection inside a
transaction the caller owns. Addresses are stored normalised (the lower-case addr-spec) and
the callers normalise them; attributes go in as JSON text the callers made and checked.

A contact's id is the key a campaign's fan-out pages a list by (:func:`contact_page`): a
contact keeps its id when it is updated, so a page read after a checkpoint repeats no one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

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

_CHUNK = 5000
"""Rows per statement: 30,000 parameters for a write, within SQLite's 32,766 (3.32+) and
PostgreSQL's 65,535. Few, large statements: an import's writes run on a thread of their own,
and each statement that ends must win the GIL back from the thread reading the file, up to a
switch interval (5 ms) apiece."""

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
    for start in range(0, len(addresses), _CHUNK):
        chunk = addresses[start : start + _CHUNK]
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
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        sql = _WRITE_HEAD + ", ".join([_WRITE_ROW] * len(chunk)) + tail
        if dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
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
    for start in range(0, len(wanted), _CHUNK):
        result = connection.execute(
            delete(contacts).where(
                contacts.c.list_id == list_id,
                contacts.c.address.in_(wanted[start : start + _CHUNK]),
            )
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

"""The multi-row insert of new messages, made ready before the write lock is taken.

Enqueueing a batch of a service's requests is a race for one lock: on SQLite the request
threads take the database's one write lock in turn, and every moment a thread spends in Python
while it holds it is a moment the others wait, and one more time it must win the GIL back from
them. So the statements and their values (JSON encoded, in the driver's own parameter style)
are built by :func:`prepare_insert` first, and :func:`run_insert` only executes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from mailroom.outbox.schema import messages

__all__ = ["PreparedInsert", "prepare_insert", "run_insert"]

_COLUMNS = (
    "message_id",
    "stream",
    "priority",
    "status",
    "sender",
    "recipients",
    "subject",
    "data",
    "smtputf8",
    "extra",
    "consent_scopes",
    "consent_required",
    "created_at",
    "due_at",
    "updated_at",
    "attempts",
    "tracked_links",
)
_JSON_COLUMNS = frozenset({"recipients", "extra", "consent_scopes", "tracked_links"})
# 17,000 parameters: within SQLite's 32,766 (3.32+) and PostgreSQL's 65,535. One statement for
# a whole batch of the API (1,000 at most): each one is another wait for the GIL.
_ROWS_PER_INSERT = 1000
_VALUES_ROW = "(" + ", ".join("?" for _ in _COLUMNS) + ")"


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    values: tuple[Any, ...]
    rows: int


@dataclass(frozen=True, slots=True)
class PreparedInsert:
    """The statements that insert a run of message rows (none of them with an idempotency
    key), for one kind of database."""

    statements: tuple[_Statement, ...]
    returning: bool
    """PostgreSQL's ids come back with ``RETURNING``; SQLite's are worked out (see
    :func:`run_insert`)."""


def prepare_insert(rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> PreparedInsert:
    """The statements inserting ``rows``, in ``dialect``'s parameter style."""
    returning = dialect.name != "sqlite"
    statements = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        sql = (
            f"INSERT INTO {messages.name} ({', '.join(_COLUMNS)}) "  # noqa: S608 - our names
            f"VALUES {', '.join([_VALUES_ROW] * len(chunk))}"
        )
        if returning:
            sql += " RETURNING id"
        if dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        values = tuple(
            (json.dumps(row[name]) if row[name] is not None else None)
            if name in _JSON_COLUMNS
            else row[name]
            for row in chunk
            for name in _COLUMNS
        )
        statements.append(_Statement(sql, values, len(chunk)))
    return PreparedInsert(tuple(statements), returning)


def run_insert(connection: Connection, prepared: PreparedInsert) -> list[int]:
    """Run ``prepared`` in the caller's transaction; the new ids, in the rows' order.

    The rows of a VALUES list are inserted in order, and each gets a larger id than the one
    before (SQLite: largest rowid + 1, under its one writer lock; PostgreSQL: one ``nextval``
    per row, in order). PostgreSQL hands them back with ``RETURNING``, sorted to match the
    rows whatever order they come in. SQLite does not use ``RETURNING``: its rows come back
    one ``sqlite3_step`` each, and each step lets go of the GIL and must win it back from the
    request threads building the next batch, hundreds of times while this thread holds the
    write lock. Its ids are consecutive, so the last one and the count give them all.
    """
    ids: list[int] = []
    for statement in prepared.statements:
        result = connection.exec_driver_sql(statement.sql, statement.values)
        if prepared.returning:
            ids += sorted(found[0] for found in result)
            continue
        last = result.lastrowid
        if result.rowcount != statement.rows or last is None:  # cannot happen: said if it does
            raise RuntimeError(f"inserted {result.rowcount} of {statement.rows} message rows")
        ids += range(last - statement.rows + 1, last + 1)
    return ids

"""Every query on a schema-version table: Alembic's one-row ``version_num`` table, read and
moved when Mailroom adopts a revision an older release kept in ``alembic_version``.

Alembic reads and writes the current revision itself; these are the statements
:func:`mailroom.outbox.database.adopt_legacy_version` runs around it. Each function takes an
open connection inside a transaction the caller owns.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, select

__all__ = ["move_revision", "revisions_in"]


def _version_table(name: str) -> Table:
    # The table Alembic itself makes (alembic.runtime.migration), so Alembic reads it as its own.
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


def revisions_in(connection: Connection, table: str) -> list[str]:
    """The revisions recorded in the version table ``table`` (which must exist)."""
    rows = connection.execute(select(_version_table(table).c.version_num))
    return [row.version_num for row in rows]


def move_revision(connection: Connection, revision: str, *, source: str, target: str) -> None:
    """Create the version table ``target`` holding ``revision``, take ``revision`` out of
    ``source``, and drop ``source`` if nothing else is left in it (an application's own
    revision stays, with its table)."""
    legacy = _version_table(source)
    ours = _version_table(target)
    ours.create(connection)
    connection.execute(ours.insert().values(version_num=revision))
    connection.execute(legacy.delete().where(legacy.c.version_num == revision))
    if connection.execute(select(legacy.c.version_num)).first() is None:
        legacy.drop(connection)

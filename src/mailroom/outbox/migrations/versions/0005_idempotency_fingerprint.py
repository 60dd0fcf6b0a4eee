"""idempotency fingerprint: what a key was first used for

Revision ID: 0005
Revises: 0004

The same idempotency key with different content used to return the old message's id
silently. Each keyed row now keeps a digest of the request it was made for
(:func:`mailroom.message.content_fingerprint`), and a key reused for another request is
refused. Rows from before this revision have none and are matched by key alone, as before.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column(
        "mailroom_messages",
        sa.Column(
            "idempotency_fingerprint",
            sa.String(length=64),
            nullable=True,
            comment="sha256 of the request the key was first used for",
        ),
    )


def downgrade() -> None:
    _drop_columns("idempotency_fingerprint")


def _drop_columns(*names: str) -> None:
    """Drop columns of mailroom_messages without losing rows that reference it.

    On SQLite a batch rebuild drops the old table, and with foreign keys on (the engine
    turns them on, and ``PRAGMA foreign_keys`` cannot change inside the migration's
    transaction) that deletes every ``mailroom_attempts`` row by ``ON DELETE CASCADE``.
    SQLite 3.35 and later drop a plain column in place; older ones get the rebuild with the
    attempts kept aside in a temporary table and put back.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        for name in names:
            op.drop_column("mailroom_messages", name)
        return
    bind.exec_driver_sql(
        "CREATE TEMP TABLE mailroom_attempts_kept AS SELECT * FROM mailroom_attempts"
    )
    with op.batch_alter_table("mailroom_messages") as batch:
        for name in names:
            batch.drop_column(name)
    bind.exec_driver_sql("INSERT INTO mailroom_attempts SELECT * FROM mailroom_attempts_kept")
    bind.exec_driver_sql("DROP TABLE mailroom_attempts_kept")

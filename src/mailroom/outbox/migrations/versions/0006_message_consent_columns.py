"""consent facts of a message in columns of its own, out of the caller's metadata

Revision ID: 0006
Revises: 0005

``notify`` used to write a message's suppression scopes and whether it is required mail into
its metadata (``extra``), under the keys ``mailroom_scopes`` and ``mailroom_required``, and
the worker read them back with a second select of the rows it had just claimed. They are now
the columns ``consent_scopes`` and ``consent_required``, returned by the claim itself, and the
caller's metadata holds only the caller's keys. Rows already stored move over with the same
meaning: a row with either key gets both columns, as the worker read them (scopes: the list,
or ``["all"]`` if empty; required: the key's truth, or, when absent, whether the scopes key
was absent too); a row with neither keeps both columns empty (a plain send: ``all``, as
required mail). Only non-empty strings are kept as scopes, and a value that leaves none (not
a list, or a list of none) becomes ``["all"]`` like an empty list: the claim cannot check an
empty scope. The downgrade writes the columns back into the metadata.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The keys as they were; written here, not imported, so this revision never changes.
_SCOPES = "mailroom_scopes"
_REQUIRED = "mailroom_required"
_BATCH = 1000

_messages = sa.table(
    "mailroom_messages",
    sa.column("id", sa.BigInteger),
    # none_as_null: None is SQL NULL, as the outbox stores empty metadata, not JSON null.
    sa.column("extra", sa.JSON(none_as_null=True)),
    sa.column("consent_scopes", sa.JSON(none_as_null=True)),
    sa.column("consent_required", sa.Boolean),
)


def upgrade() -> None:
    # ADD COLUMN of nullable columns: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column(
        "mailroom_messages",
        sa.Column(
            "consent_scopes",
            sa.JSON(),
            nullable=True,
            comment="suppression scopes checked at claim; none: 'all', as required mail",
        ),
    )
    op.add_column(
        "mailroom_messages",
        sa.Column(
            "consent_required",
            sa.Boolean(),
            nullable=True,
            comment="mail the recipient may not turn off; set with consent_scopes",
        ),
    )
    # Only rows whose metadata mentions a key are read (the text test is a cheap filter;
    # the keys are then looked up for real), a batch at a time in id order.
    mentions = sa.cast(_messages.c.extra, sa.Text).like("%mailroom\\_%", escape="\\")
    for rows in _batches(_messages.c.extra.is_not(None) & mentions):
        changes = []
        for row in rows:
            extra = row.extra
            if not isinstance(extra, dict) or not ({_SCOPES, _REQUIRED} & extra.keys()):
                continue
            scopes = _scopes(extra.get(_SCOPES))
            required = bool(extra.get(_REQUIRED, _SCOPES not in extra))
            rest = {k: v for k, v in extra.items() if k not in (_SCOPES, _REQUIRED)}
            changes.append(
                {"pk": row.id, "extra": rest or None, "scopes": scopes, "required": required}
            )
        _write(changes)


def downgrade() -> None:
    for rows in _batches(_messages.c.consent_scopes.is_not(None)):
        changes = [
            {
                "pk": row.id,
                "extra": {
                    **(row.extra or {}),
                    _SCOPES: list(row.consent_scopes),
                    _REQUIRED: bool(row.consent_required),
                },
                "scopes": None,
                "required": None,
            }
            for row in rows
            if row.consent_scopes is not None  # not a JSON null
        ]
        _write(changes)
    _drop_columns("consent_required", "consent_scopes")


def _scopes(value: object) -> list[str]:
    """The scopes of a stored ``mailroom_scopes`` value: its non-empty strings, or ``["all"]``
    (what the worker made of a missing or empty list) when there are none."""
    kept = [s for s in value if isinstance(s, str) and s] if isinstance(value, list) else []
    return kept or ["all"]


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


def _batches(condition: sa.ColumnElement[bool]) -> Iterator[Sequence[sa.Row[Any]]]:
    """The rows matching ``condition``, in lists of up to _BATCH, by id (keyset paging, so
    memory stays bounded and updates between batches do not disturb the scan)."""
    bind = op.get_bind()
    last = None
    while True:
        query = sa.select(_messages).where(condition)
        if last is not None:
            query = query.where(_messages.c.id > last)
        rows = bind.execute(query.order_by(_messages.c.id).limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _write(changes: list[dict[str, Any]]) -> None:
    if not changes:
        return
    op.get_bind().execute(
        _messages.update()
        .where(_messages.c.id == sa.bindparam("pk"))
        .values(
            extra=sa.bindparam("extra"),
            consent_scopes=sa.bindparam("scopes"),
            consent_required=sa.bindparam("required"),
        ),
        changes,
    )

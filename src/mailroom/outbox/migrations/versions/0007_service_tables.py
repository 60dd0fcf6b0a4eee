"""service tables: events, captured mail, API keys

Revision ID: 0007
Revises: 0006

``mailroom serve`` records what happened to each message and recipient as events (one closed
vocabulary, :class:`mailroom.outbox.vocabulary.EventType`), keeps what the ``capture`` transport
delivered, and checks API keys, stored as digests only. A message keeps the links click
tracking rewrote (``tracked_links``), and is found by its Message-ID, which tracking tokens name.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # ADD COLUMN of a nullable column: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column(
        "mailroom_messages",
        sa.Column(
            "tracked_links",
            sa.JSON(none_as_null=True),
            nullable=True,
            comment="the URLs click tracking rewrote, by link index; none: no click tracking",
        ),
    )
    op.create_index(op.f("ix_mailroom_messages_message_id"), "mailroom_messages", ["message_id"])
    op.create_table(
        "mailroom_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column(
            "message_pk",
            _ID,
            nullable=True,
            comment="none for an event of no one message (an unsubscribe from the preferences)",
        ),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False, comment="an EventType"),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column(
            "label",
            sa.String(length=16),
            nullable=True,
            comment="a HitLabel, for opened and clicked",
        ),
        sa.Column(
            "link_index", sa.Integer(), nullable=True, comment="the clicked link, for clicked"
        ),
        sa.Column("detail", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["mailroom_messages.id"],
            name=op.f("fk_mailroom_events_message_pk"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_events")),
    )
    op.create_index(op.f("ix_mailroom_events_message_pk"), "mailroom_events", ["message_pk"])
    op.create_index(op.f("ix_mailroom_events_type_at"), "mailroom_events", ["type", "at"])

    op.create_table(
        "mailroom_captured",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column(
            "message_pk",
            _ID,
            nullable=True,
            comment="the outbox message it was delivered for; none once that is purged",
        ),
        sa.Column(
            "message_id", sa.String(length=255), nullable=False, comment="the Message-ID header"
        ),
        sa.Column("mail_from", sa.Text(), nullable=False, comment="the envelope sender"),
        sa.Column("recipients", sa.JSON(), nullable=False, comment="the envelope recipients"),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column(
            "data", sa.LargeBinary(), nullable=False, comment="the exact bytes a relay would get"
        ),
        sa.Column("captured_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["mailroom_messages.id"],
            name=op.f("fk_mailroom_captured_message_pk"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_captured")),
    )
    op.create_index(op.f("ix_mailroom_captured_message_pk"), "mailroom_captured", ["message_pk"])

    op.create_table(
        "mailroom_api_keys",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "prefix",
            sa.String(length=16),
            nullable=False,
            comment="the key's public part, to find it",
        ),
        sa.Column(
            "key_hash", sa.String(length=64), nullable=False, comment="sha256 of the whole key"
        ),
        sa.Column("scope", sa.String(length=16), nullable=False, comment="an ApiKeyScope"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_mailroom_api_keys_prefix")),
    )


def downgrade() -> None:
    op.drop_table("mailroom_api_keys")
    op.drop_index(op.f("ix_mailroom_captured_message_pk"), table_name="mailroom_captured")
    op.drop_table("mailroom_captured")
    op.drop_index(op.f("ix_mailroom_events_type_at"), table_name="mailroom_events")
    op.drop_index(op.f("ix_mailroom_events_message_pk"), table_name="mailroom_events")
    op.drop_table("mailroom_events")
    op.drop_index(op.f("ix_mailroom_messages_message_id"), table_name="mailroom_messages")
    _drop_columns("tracked_links")


def _drop_columns(*names: str) -> None:
    """Drop columns of mailroom_messages without losing the attempts that reference it; a copy
    of revision 0006's, as a migration must not change when a later one does. The events and
    captured mail, which reference it too, are dropped before this runs."""
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

"""indexes for the admin's message search

Revision ID: 0009
Revises: 0008

The admin lists messages newest first by (created_at, id), filtered by status, stream,
notification type (``notify`` keeps it in the metadata, ``extra``) or an exact recipient
address. Each of those leads an index that goes on in the listing's order, so a page of a
million-row outbox is read off an index instead of sorting every match. A recipient is looked
up in the events, where every recipient of a message has a row of its own (its ``queued``
event), lower-cased, since addresses are matched regardless of case.

The expressions are written out per dialect, not taken from the schema module, so that this
revision never changes when that module does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TYPE_EXPRESSION = {
    "sqlite": "json_extract(extra, '$.notification_type')",
    "postgresql": "(extra ->> 'notification_type')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_index("ix_mailroom_messages_created_at_id", "mailroom_messages", ["created_at", "id"])
    op.create_index(
        "ix_mailroom_messages_status_created_at_id",
        "mailroom_messages",
        ["status", "created_at", "id"],
    )
    op.create_index(
        "ix_mailroom_messages_stream_created_at_id",
        "mailroom_messages",
        ["stream", "created_at", "id"],
    )
    op.create_index(
        "ix_mailroom_messages_notification_type",
        "mailroom_messages",
        [sa.text(_TYPE_EXPRESSION[dialect]), "created_at", "id"],
    )
    op.create_index(
        "ix_mailroom_events_recipient_lower",
        "mailroom_events",
        [sa.text("lower(recipient)"), "message_pk"],
    )


def downgrade() -> None:
    op.drop_index("ix_mailroom_events_recipient_lower", table_name="mailroom_events")
    for name in ("notification_type", "stream_created_at_id", "status_created_at_id"):
        op.drop_index(f"ix_mailroom_messages_{name}", table_name="mailroom_messages")
    op.drop_index("ix_mailroom_messages_created_at_id", table_name="mailroom_messages")

"""idempotency fingerprint: what a key was first used for

Revision ID: 0005
Revises: 0004

The same idempotency key with different content used to return the old message's id
silently. Each keyed row now keeps a digest of the request it was made for
(:func:`mailroom.message.content_fingerprint`), and a key reused for another request is
refused. Rows from before this revision have none and are matched by key alone, as before.
"""

from __future__ import annotations

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
    with op.batch_alter_table("mailroom_messages") as batch:
        batch.drop_column("idempotency_fingerprint")

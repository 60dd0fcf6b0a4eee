"""an index for the admin's list of opt-outs

Revision ID: 0010
Revises: 0009

The suppressions page lists who turned a notification type off, newest first: the
preferences whose ``email`` is false, by ``updated_at``. This index reads that page off in
order instead of sorting every stored preference.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_mailroom_preferences_email_updated_at",
        "mailroom_preferences",
        ["email", "updated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_mailroom_preferences_email_updated_at", table_name="mailroom_preferences")

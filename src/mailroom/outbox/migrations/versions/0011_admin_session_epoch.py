"""admin session epoch: signing out and a new password end an account's sessions

Revision ID: 0011
Revises: 0010

An admin session is a signed cookie; it carries the account's ``session_epoch`` as it was at
sign-in, and a session whose epoch is no longer the account's is refused. Signing out and
setting a password raise the number, so both end every session of the account, in every
process and across restarts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOT NULL with a default: SQLite and PostgreSQL add it without rebuilding the table.
    op.add_column(
        "mailroom_admin_users",
        sa.Column(
            "session_epoch",
            sa.Integer(),
            nullable=False,
            server_default=sa.text("0"),
            comment="raised by sign-out and a new password: older sessions are refused",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("mailroom_admin_users") as batch:
        batch.drop_column("session_epoch")

"""message bytes stored out of line, uncompressed, on PostgreSQL

Revision ID: 0004
Revises: 0003

A message row is updated at least twice (claimed, then sent). With the default storage a
~4 KB body is compressed and kept in the row, so every update compresses nothing new but copies
it; stored out of line (EXTERNAL), an update that does not touch ``data`` keeps a pointer to
the same bytes, and nothing is compressed or decompressed on the way to the relay.
SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE mailroom_messages ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE mailroom_messages ALTER COLUMN data SET STORAGE EXTENDED")

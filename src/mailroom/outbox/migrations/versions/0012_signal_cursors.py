"""signal cursors: how far the Django signals have read the event log

Revision ID: 0012
Revises: 0011

``manage.py mailroom_worker`` sends Django signals for the events in the log. Each command
used to keep its place in memory: two commands sent every event twice, and an event recorded
while none ran was never sent. The place is now a row here, claimed with the events it covers
in one transaction, so every process reading shares it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailroom_signal_cursors",
        sa.Column("name", sa.String(64), primary_key=True, comment="who reads: django-signals"),
        sa.Column(
            "last_event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            comment="the last event handed on; the next reader starts after it",
        ),
        sa.Column("updated_at", sa.Double(), nullable=False),
        comment="how far a reader of the event log has got, shared by all its processes",
    )


def downgrade() -> None:
    op.drop_table("mailroom_signal_cursors")

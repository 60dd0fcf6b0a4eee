"""admin users: the accounts that sign in to the admin pages

Revision ID: 0008
Revises: 0007

``mailroom serve`` shows admin pages under ``/admin/`` to signed-in operators. Each account
keeps a scrypt hash of its password (never the password) and when it last signed in; an
account is disabled by a time rather than deleted, so what it did stays attributable.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mailroom_admin_users",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column(
            "password_hash",
            sa.Text(),
            nullable=False,
            comment="scrypt$n$r$p$salt$hash, base64; never the password",
        ),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_login_at", sa.Double(), nullable=True),
        sa.Column(
            "disabled_at", sa.Double(), nullable=True, comment="set: the account cannot sign in"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_admin_users")),
        sa.UniqueConstraint("username", name=op.f("uq_mailroom_admin_users_username")),
    )


def downgrade() -> None:
    op.drop_table("mailroom_admin_users")

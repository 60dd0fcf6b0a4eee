"""campaigns: mailing lists, contacts, campaigns and the per-recipient ledger

Revision ID: 0013
Revises: 0012

Bulk campaigns (issue 14). A campaign's audience is paged by key into its ledger, one row per
campaign and address; the ledger row moves from pending to queued in the same transaction
that puts its message in the outbox, so no re-run, pause, resume or crash can queue a second
message to the same person. Sent, failed and suppressed are read from the message itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mailroom_lists",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column(
            "name",
            sa.String(length=100),
            nullable=False,
            comment="unique; its scope is list:<name>",
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_mailroom_lists_name")),
        comment="a mailing list: the contacts a campaign can be sent to",
    )
    op.create_table(
        "mailroom_contacts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("list_id", _ID, nullable=False),
        sa.Column(
            "address",
            sa.String(length=320),
            nullable=False,
            comment="normalised: lower-case addr-spec",
        ),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "attributes", sa.JSON(), nullable=True, comment="merge fields: {{ contact.<key> }}"
        ),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["mailroom_lists.id"],
            name=op.f("fk_mailroom_contacts_list_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_contacts")),
        sa.UniqueConstraint(
            "list_id", "address", name=op.f("uq_mailroom_contacts_list_id_address")
        ),
    )
    op.create_index(op.f("ix_mailroom_contacts_list_id_id"), "mailroom_contacts", ["list_id", "id"])
    op.create_table(
        "mailroom_campaigns",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="a CampaignStatus"),
        sa.Column(
            "audience", sa.String(length=200), nullable=False, comment="list:<name> or app:<name>"
        ),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("from_email", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("body_format", sa.String(length=16), nullable=False, comment="html or markdown"),
        sa.Column(
            "body",
            sa.Text(),
            nullable=False,
            comment="the source as written, merge fields and all",
        ),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("send_at", sa.Double(), nullable=True, comment="scheduled: not before then"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column(
            "paused_reason", sa.Text(), nullable=True, comment="why it paused, when not by hand"
        ),
        sa.Column(
            "resumed_at",
            sa.Double(),
            nullable=True,
            comment="the last resume: its error rate is judged on outcomes since then",
        ),
        sa.Column(
            "paused_from",
            sa.String(length=16),
            nullable=True,
            comment="the status a pause interrupted (scheduled or sending), for the resume",
        ),
        sa.Column(
            "fanout_checkpoint",
            sa.JSON(),
            nullable=True,
            comment="the audience's key of the last contact in the ledger: the fan-out goes on "
            "after it",
        ),
        sa.Column("fanout_done", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("duplicated_from", _ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_campaigns")),
        comment="a campaign: one message composed once, sent to an audience",
    )
    op.create_index(
        op.f("ix_mailroom_campaigns_status_send_at"), "mailroom_campaigns", ["status", "send_at"]
    )
    op.create_table(
        "mailroom_campaign_recipients",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column(
            "address",
            sa.String(length=320),
            nullable=False,
            comment="normalised: lower-case addr-spec",
        ),
        sa.Column(
            "contact_key", sa.Text(), nullable=False, comment="the audience's key for the contact"
        ),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            sa.JSON(),
            nullable=True,
            comment="the contact's merge fields at fan-out",
        ),
        sa.Column("status", sa.String(length=16), nullable=False, comment="a RecipientStatus"),
        sa.Column(
            "message_pk",
            _ID,
            nullable=True,
            comment="the outbox message once queued; where sent or failed is read from",
        ),
        sa.Column("reason", sa.Text(), nullable=True, comment="why suppressed, skipped or failed"),
        sa.Column(
            "message_id",
            sa.String(length=255),
            nullable=True,
            comment="the Message-ID of a message taken back after an attempt: the next keeps it",
        ),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["mailroom_campaigns.id"],
            name=op.f("fk_mailroom_campaign_recipients_campaign_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["mailroom_messages.id"],
            name=op.f("fk_mailroom_campaign_recipients_message_pk"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailroom_campaign_recipients")),
        sa.UniqueConstraint(
            "campaign_id",
            "address",
            name=op.f("uq_mailroom_campaign_recipients_campaign_id_address"),
        ),
        comment="the per-recipient ledger of a campaign: who is pending, queued, suppressed or "
        "skipped, and which message each got",
    )
    op.create_index(
        op.f("ix_mailroom_campaign_recipients_campaign_id_status_id"),
        "mailroom_campaign_recipients",
        ["campaign_id", "status", "id"],
    )
    op.create_index(
        op.f("ix_mailroom_campaign_recipients_message_pk"),
        "mailroom_campaign_recipients",
        ["message_pk"],
    )


def downgrade() -> None:
    op.drop_table("mailroom_campaign_recipients")
    op.drop_table("mailroom_campaigns")
    op.drop_table("mailroom_contacts")
    op.drop_table("mailroom_lists")

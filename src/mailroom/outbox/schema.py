"""The outbox tables, as SQLAlchemy Core metadata. The closed vocabularies stored in them
(statuses, outcomes, reasons, event types) are in :mod:`mailroom.outbox.vocabulary`.

Times are stored as UTC epoch seconds (double precision): the same type, comparisons and
arithmetic on SQLite and PostgreSQL, with no time-zone conversions in between.

Message bytes are stored as built (``data``), never pickled: what was committed is exactly
what goes on the wire, and any tool can read it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "admin_users",
    "api_keys",
    "attempts",
    "campaign_recipients",
    "campaigns",
    "captured",
    "consent_log",
    "contacts",
    "events",
    "mailing_lists",
    "messages",
    "metadata",
    "notification_log",
    "notification_type_of",
    "preferences",
    "signal_cursors",
    "streams",
    "suppressions",
    "templates",
    "throttle_windows",
]


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only


class notification_type_of(FunctionElement[str]):  # noqa: N801 (an SQL function's name)
    """The notification type ``notify`` writes into a message's metadata (``extra``), as SQL.

    One construct for the index and the search alike, rendered with the key as a literal: an
    expression index is used only for a query that spells the same expression, and a bound
    parameter in place of the key would not be the same (on SQLite it never is).
    """

    type = String()
    inherit_cache = True
    name = "notification_type_of"


@compiles(notification_type_of, "sqlite")
def _type_sqlite(element: notification_type_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.clauses, **kw)}, '$.notification_type')"


@compiles(notification_type_of, "postgresql")
def _type_postgresql(element: notification_type_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} ->> 'notification_type')"


messages = Table(
    "mailroom_messages",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("message_id", String(255), nullable=False, comment="the Message-ID header"),
    Column("stream", String(64), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("sender", Text, nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("subject", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("smtputf8", Boolean, nullable=False),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column(
        "idempotency_fingerprint",
        String(64),
        nullable=True,
        comment="sha256 of the request the key was first used for",
    ),
    Column("extra", JSON, nullable=True, comment="the caller's metadata"),
    Column(
        "consent_scopes",
        JSON(none_as_null=True),  # no facts: SQL NULL, not JSON null, on every insert path
        nullable=True,
        comment="suppression scopes checked at claim; none: 'all', as required mail",
    ),
    Column(
        "consent_required",
        Boolean,
        nullable=True,
        comment="mail the recipient may not turn off; set with consent_scopes",
    ),
    Column("created_at", Double, nullable=False),
    Column("due_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("sent_at", Double, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("lease_token", String(32), nullable=True),
    Column("lease_expires_at", Double, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_enhanced_status", String(16), nullable=True),
    Column(
        "tracked_links",
        JSON(none_as_null=True),
        nullable=True,
        comment="the URLs click tracking rewrote, by link index; none: no click tracking",
    ),
    Index(None, "status", "priority", "due_at"),
    Index(None, "lease_expires_at"),
    Index(None, "message_id"),  # tracking tokens name a message by its Message-ID
    # The admin's message search (outbox/message_search.py) lists newest first by
    # (created_at, id): each equality it filters on leads an index that goes on in that
    # order, so a page is read straight off the index whatever the filter.
    Index(None, "created_at", "id"),
    Index(None, "status", "created_at", "id"),
    Index(None, "stream", "created_at", "id"),
    Index(
        "ix_mailroom_messages_notification_type",
        notification_type_of(Column("extra")),
        "created_at",
        "id",
    ),
)

attempts = Table(
    "mailroom_attempts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column(
        "message_pk", _ID, ForeignKey("mailroom_messages.id", ondelete="CASCADE"), nullable=False
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", Double, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("transport", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", Integer, nullable=True),
    Column("enhanced_status", String(16), nullable=True),
    Column("server_text", Text, nullable=True),
    Column("possible_duplicate", Boolean, nullable=False),
    Column("worker", String(64), nullable=False),
    Index(None, "message_pk"),
    Index(None, "at"),
)

streams = Table(
    "mailroom_streams",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("paused_until", Double, nullable=True),
    Column("pause_reason", Text, nullable=True),
    Column("consecutive_pauses", Integer, nullable=False),
)

throttle_windows = Table(
    "mailroom_throttle_windows",
    metadata,
    Column("name", String(64), primary_key=True, comment="'burst' or a window: '1s', '1m'..."),
    Column("window_start", Double, nullable=False),
    Column("granted", Integer, nullable=False, comment="sends allowed in this window or burst"),
    Column("finished", Integer, nullable=False, comment="burst sends that have finished"),
    Column("paused_until", Double, nullable=True, comment="burst pause"),
)


# -- notifications: preferences, suppression, consent, templates ---------------------------

_ADDRESS = String(320)  # RFC 5321 §4.5.3.1: 64 + "@" + 255
_TYPE_NAME = String(100)
_SCOPE = String(200)

suppressions = Table(
    "mailroom_suppressions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("address", _ADDRESS, nullable=False, comment="normalised: lower-case addr-spec"),
    Column("scope", _SCOPE, nullable=False, comment="'all', 'type:<name>' or 'list:<name>'"),
    Column("reason", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True, comment="none: until removed"),
    Column("note", Text, nullable=True),
    UniqueConstraint("address", "scope"),
)

preferences = Table(
    "mailroom_preferences",
    metadata,
    Column("recipient", _ADDRESS, primary_key=True, comment="the app's user key, or the address"),
    Column("notification_type", _TYPE_NAME, primary_key=True),
    Column("email", Boolean, nullable=False),
    Column("updated_at", Double, nullable=False),
    # The admin's list of opt-outs: the newest choices that turned a type off.
    Index(None, "email", "updated_at"),
)

consent_log = Table(
    "mailroom_consent_log",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("recipient", _ADDRESS, nullable=False),
    Column("action", String(32), nullable=False),
    Column("scope", _SCOPE, nullable=False),
    Column("source", String(32), nullable=False, comment="one_click, link, mailto, api, admin"),
    Column("detail", JSON, nullable=True),
    Index(None, "recipient"),
)

notification_log = Table(
    "mailroom_notification_log",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("notification_type", _TYPE_NAME, nullable=False),
    Column("recipient", Text, nullable=False, comment="address, else the app's key or name"),
    Column("outcome", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("message_pk", _ID, nullable=True, comment="the outbox message, when queued"),
    Column("actor", Text, nullable=True),
    Index(None, "notification_type", "at"),
    Index(None, "at"),
)

templates = Table(
    "mailroom_templates",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("updated_at", Double, nullable=False),
)


# -- the service: events, captured mail, API keys -------------------------------------------

events = Table(
    "mailroom_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column(
        "message_pk",
        _ID,
        ForeignKey("mailroom_messages.id", ondelete="CASCADE"),
        nullable=True,
        comment="none for an event of no one message (an unsubscribe from the preferences)",
    ),
    Column("recipient", Text, nullable=False),
    Column("type", String(16), nullable=False, comment="an EventType"),
    Column("at", Double, nullable=False),
    Column("label", String(16), nullable=True, comment="a HitLabel, for opened and clicked"),
    Column("link_index", Integer, nullable=True, comment="the clicked link, for clicked"),
    Column("detail", JSON(none_as_null=True), nullable=True),
    Index(None, "message_pk"),
    Index(None, "type", "at"),
    # The message search's exact recipient: every recipient of every message has at least
    # its ``queued`` event here, one row per address, where the messages table holds them as
    # a JSON list no index of both databases can look inside (see message_search.py).
    Index("ix_mailroom_events_recipient_lower", func.lower(Column("recipient")), "message_pk"),
)

signal_cursors = Table(
    "mailroom_signal_cursors",
    metadata,
    Column("name", String(64), primary_key=True, comment="who reads: django-signals"),
    Column(
        "last_event_id",
        _ID,
        nullable=False,
        comment="the last event handed on; the next reader starts after it",
    ),
    Column("updated_at", Double, nullable=False),
    comment="how far a reader of the event log has got, shared by all its processes",
)

captured = Table(
    "mailroom_captured",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column(
        "message_pk",
        _ID,
        ForeignKey("mailroom_messages.id", ondelete="SET NULL"),
        nullable=True,
        comment="the outbox message it was delivered for; none once that is purged",
    ),
    Column("message_id", String(255), nullable=False, comment="the Message-ID header"),
    Column("mail_from", Text, nullable=False, comment="the envelope sender"),
    Column("recipients", JSON, nullable=False, comment="the envelope recipients"),
    Column("subject", Text, nullable=False),
    Column("data", LargeBinary, nullable=False, comment="the exact bytes a relay would get"),
    Column("captured_at", Double, nullable=False),
    Index(None, "message_pk"),
)

api_keys = Table(
    "mailroom_api_keys",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False, comment="the key's public part, to find it"),
    Column("key_hash", String(64), nullable=False, comment="sha256 of the whole key"),
    Column("scope", String(16), nullable=False, comment="an ApiKeyScope"),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    UniqueConstraint("prefix"),
)

admin_users = Table(
    "mailroom_admin_users",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False),
    Column(
        "password_hash",
        Text,
        nullable=False,
        comment="scrypt$n$r$p$salt$hash, base64; never the password",
    ),
    Column("created_at", Double, nullable=False),
    Column("last_login_at", Double, nullable=True),
    Column("disabled_at", Double, nullable=True, comment="set: the account cannot sign in"),
    Column(
        "session_epoch",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="raised by sign-out and a new password: older sessions are refused",
    ),
    UniqueConstraint("username"),
)


# -- bulk campaigns: lists, contacts, campaigns and the per-recipient ledger ---------------

mailing_lists = Table(
    "mailroom_lists",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, comment="unique; its scope is list:<name>"),
    Column("description", Text, nullable=True),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("name"),
    comment="a mailing list: the contacts a campaign can be sent to",
)

contacts = Table(
    "mailroom_contacts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column(
        "list_id",
        _ID,
        ForeignKey("mailroom_lists.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("address", _ADDRESS, nullable=False, comment="normalised: lower-case addr-spec"),
    Column("name", Text, nullable=True),
    Column("attributes", JSON, nullable=True, comment="merge fields: {{ contact.<key> }}"),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    # One contact per address in a list; its id is the key a campaign's fan-out pages by.
    UniqueConstraint("list_id", "address"),
    Index(None, "list_id", "id"),
)

campaigns = Table(
    "mailroom_campaigns",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False, comment="a CampaignStatus"),
    Column("audience", String(200), nullable=False, comment="list:<name> or app:<name>"),
    Column("subject", Text, nullable=False),
    Column("from_email", Text, nullable=False),
    Column("reply_to", Text, nullable=True),
    Column("body_format", String(16), nullable=False, comment="html or markdown"),
    Column("body", Text, nullable=False, comment="the source as written, merge fields and all"),
    Column("stream", String(64), nullable=False),
    Column("send_at", Double, nullable=True, comment="scheduled: not before then"),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("started_at", Double, nullable=True),
    Column("finished_at", Double, nullable=True),
    Column("paused_reason", Text, nullable=True, comment="why it paused, when not by hand"),
    Column(
        "resumed_at",
        Double,
        nullable=True,
        comment="the last resume: its error rate is judged on outcomes since then",
    ),
    Column(
        "paused_from",
        String(16),
        nullable=True,
        comment="the status a pause interrupted (scheduled or sending), for the resume",
    ),
    Column(
        "fanout_checkpoint",
        JSON,
        nullable=True,
        comment="the audience's key of the last contact in the ledger: the fan-out goes on "
        "after it",
    ),
    Column("fanout_done", Boolean, nullable=False, server_default=text("false")),
    Column("duplicated_from", _ID, nullable=True),
    Index(None, "status", "send_at"),
    comment="a campaign: one message composed once, sent to an audience",
)

campaign_recipients = Table(
    "mailroom_campaign_recipients",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column(
        "campaign_id",
        _ID,
        ForeignKey("mailroom_campaigns.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("address", _ADDRESS, nullable=False, comment="normalised: lower-case addr-spec"),
    Column("contact_key", Text, nullable=False, comment="the audience's key for the contact"),
    Column("name", Text, nullable=True),
    Column("attributes", JSON, nullable=True, comment="the contact's merge fields at fan-out"),
    Column("status", String(16), nullable=False, comment="a RecipientStatus"),
    Column(
        "message_pk",
        _ID,
        ForeignKey("mailroom_messages.id", ondelete="SET NULL"),
        nullable=True,
        comment="the outbox message once queued; where sent or failed is read from",
    ),
    Column("reason", Text, nullable=True, comment="why suppressed, skipped or failed"),
    Column(
        "message_id",
        String(255),
        nullable=True,
        comment="the Message-ID of a message taken back after an attempt: the next keeps it",
    ),
    Column("updated_at", Double, nullable=False),
    # The ledger: one row per campaign and address, whatever the audience yields twice, so
    # nothing can put a second message to the same person in the outbox.
    UniqueConstraint("campaign_id", "address"),
    Index(None, "campaign_id", "status", "id"),
    Index(None, "message_pk"),
    comment="the per-recipient ledger of a campaign: who is pending, queued, suppressed or "
    "skipped, and which message each got",
)

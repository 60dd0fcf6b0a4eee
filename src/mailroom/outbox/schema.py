"""The outbox tables, as SQLAlchemy Core metadata, and the closed vocabularies stored in them.

Times are stored as UTC epoch seconds (double precision): the same type, comparisons and
arithmetic on SQLite and PostgreSQL, with no time-zone conversions in between.

Message bytes are stored as built (``data``), never pickled: what was committed is exactly
what goes on the wire, and any tool can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
)

__all__ = [
    "ApiKeyScope",
    "AttemptOutcome",
    "ConsentAction",
    "ConsentFacts",
    "EventType",
    "HitLabel",
    "NotificationOutcome",
    "Status",
    "SuppressionReason",
    "api_keys",
    "attempts",
    "captured",
    "consent_log",
    "events",
    "messages",
    "metadata",
    "notification_log",
    "preferences",
    "streams",
    "suppressions",
    "templates",
    "throttle_windows",
]


class Status(StrEnum):
    """Where a message is in its life. Stored as text."""

    QUEUED = "queued"
    """Due now; any worker may claim it."""
    SCHEDULED = "scheduled"
    """Waiting for its ``send_at`` time."""
    SENDING = "sending"
    """Claimed by a worker under a lease; back to the queue if the lease expires."""
    SENT = "sent"
    """The relay accepted it (for at least one recipient)."""
    DEFERRED = "deferred"
    """A transient failure; it will be tried again at ``due_at``."""
    FAILED = "failed"
    """Given up: a permanent refusal, or out of attempts or time."""
    CANCELLED = "cancelled"
    """Withdrawn by an operator before it was sent."""
    SUPPRESSED = "suppressed"
    """Not sent: every recipient was on the suppression list when it came due
    (:func:`mailroom.consent.suppression.suppressed_for_messages`)."""


CLAIMABLE = (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED)
FINAL = (Status.SENT, Status.FAILED, Status.CANCELLED, Status.SUPPRESSED)


class AttemptOutcome(StrEnum):
    """What one delivery attempt did, for one recipient. Stored as text."""

    SENT = "sent"
    """Accepted by the relay."""
    DEFERRED = "deferred"
    """A transient failure; the message will be retried."""
    FAILED = "failed"
    """Refused for good (or out of attempts)."""
    PAUSED = "paused"
    """Our own configuration is wrong; the stream was paused and the message re-queued."""
    REFUSED = "refused"
    """This recipient was refused while others were accepted."""
    SUPPRESSED = "suppressed"
    """Not attempted: this recipient is on the suppression list."""
    INTERRUPTED = "interrupted"
    """The worker was stopped during the send and aborted it after WORKER_SHUTDOWN_GRACE;
    the message went back to the queue without using an attempt."""


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list. Stored as text."""

    UNSUBSCRIBED = "unsubscribed"
    """The recipient asked to stop (a link, one-click POST, or mailto). Mail the recipient
    cannot turn off (a password reset they asked for) still goes to them."""
    HARD_BOUNCE = "hard_bounce"
    """The address does not exist; sending again hurts the sender's reputation. Blocks all."""
    COMPLAINT = "complaint"
    """The recipient marked a message as spam. Blocks all."""
    MANUAL = "manual"
    """An operator put it there. Blocks all."""


BLOCKS_REQUIRED_MAIL = frozenset(
    {SuppressionReason.HARD_BOUNCE, SuppressionReason.COMPLAINT, SuppressionReason.MANUAL}
)
"""Reasons that stop even mail a recipient may not turn off (see SuppressionReason)."""


class ConsentAction(StrEnum):
    """What changed in a recipient's consent, for the consent log. Stored as text."""

    UNSUBSCRIBED = "unsubscribed"
    """Suppressed for a scope (everything, a type or a list) at the recipient's request."""
    PREFERENCE_CHANGED = "preference_changed"
    """Email for one notification type turned on or off."""
    SUPPRESSED = "suppressed"
    """Put on the suppression list for another reason (bounce, complaint, operator)."""
    UNSUPPRESSED = "unsuppressed"
    """Taken off the suppression list."""


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """What the check at claim needs to know about a message: the suppression scopes that
    apply to it (``all``, ``type:<name>``, ``list:<name>``) and whether it is ``required``
    mail, which the recipient may not turn off (then only hard bounces, complaints and manual
    entries stop it). Given to the outbox at enqueue (``notify`` does) and stored in the
    message's ``consent_scopes`` and ``consent_required`` columns; a message enqueued without
    them (plain ``mailroom.send``) is checked against ``all`` as required mail."""

    scopes: tuple[str, ...]
    required: bool

    def __post_init__(self) -> None:
        if not isinstance(self.scopes, tuple) or not self.scopes:
            raise ValueError("ConsentFacts.scopes must be a non-empty tuple of scopes")
        if not all(isinstance(scope, str) and scope for scope in self.scopes):
            raise ValueError(f"ConsentFacts.scopes must be non-empty strings: {self.scopes!r}")


class NotificationOutcome(StrEnum):
    """What ``notify`` did for one recipient. Stored as text."""

    QUEUED = "queued"
    """A message was committed to the outbox (``message_pk``)."""
    SKIPPED = "skipped"
    """Not sent by choice or for lack of an address; ``reason`` says which."""
    SUPPRESSED = "suppressed"
    """Not sent: the address is on the suppression list; ``reason`` names the entry's reason."""


class EventType(StrEnum):
    """What happened to a message for one recipient: the closed vocabulary of
    ``mailroom_events``. The names are django-anymail's normalised event types, which users of
    provider webhooks already know. Stored as text."""

    QUEUED = "queued"
    """Committed to the outbox."""
    SENT = "sent"
    """The relay (or a development transport) accepted it for this recipient."""
    DEFERRED = "deferred"
    """A transient failure; it will be tried again."""
    FAILED = "failed"
    """Given up for this recipient: refused for good, or out of attempts or time."""
    SUPPRESSED = "suppressed"
    """Withheld: the recipient was on the suppression list when the message came due."""
    OPENED = "opened"
    """The open-tracking pixel was fetched (``label`` says by whom, as far as we can tell)."""
    CLICKED = "clicked"
    """A tracked link was followed (``link_index`` names it; ``label`` as for opens)."""
    UNSUBSCRIBED = "unsubscribed"
    """The recipient used the message's unsubscribe link or one-click POST."""
    DELIVERED = "delivered"
    """The receiving server confirmed delivery (a DSN). Not recorded yet."""
    BOUNCED = "bounced"
    """The receiving server refused it after the relay accepted it. Not recorded yet."""
    COMPLAINED = "complained"
    """The recipient marked it as spam (a feedback loop report). Not recorded yet."""
    AUTORESPONDED = "autoresponded"
    """An automatic reply (out of office) came back. Not recorded yet."""


class HitLabel(StrEnum):
    """Who most likely fetched a tracking pixel or followed a tracked link. Every hit is kept;
    the label says how to count it, so reports show people and machines apart instead of
    silently dropping what a filter guessed wrong. Stored as text."""

    HUMAN = "human"
    """Nothing suggests a machine."""
    PREFETCH = "prefetch"
    """A mail provider's proxy fetched the image for the recipient, or ahead of them (Apple
    Mail Privacy Protection, Gmail's image proxy): it says the message arrived, not that it
    was read."""
    SCANNER = "scanner"
    """A link-safety scanner: a known scanner's user agent, a HEAD request, or a click within
    seconds of delivery."""


class ApiKeyScope(StrEnum):
    """What an API key may do. Stored as text."""

    SEND = "send"
    """Send messages and notifications, and read what it sent; nothing else."""
    ADMIN = "admin"
    """Everything the API offers: other messages, captured mail, suppressions, preferences."""


STREAM_PRIORITIES = {"transactional": 0, "bulk": 100}
"""Lower is sooner. Streams not named here get 50."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only

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

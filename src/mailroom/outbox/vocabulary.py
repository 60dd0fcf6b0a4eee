"""The closed vocabularies the outbox stores as text (statuses, outcomes, reasons, event types,
scopes), each member documented, and the consent facts a message carries to its claim.

Kept apart from the tables (:mod:`mailroom.outbox.schema`): most code needs the words, not the
SQL, and a migration must never depend on them changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BLOCKS_REQUIRED_MAIL",
    "CLAIMABLE",
    "FINAL",
    "STREAM_PRIORITIES",
    "TEST_STREAM",
    "ApiKeyScope",
    "AttemptOutcome",
    "CampaignStatus",
    "ConsentAction",
    "ConsentFacts",
    "EventType",
    "HitLabel",
    "NotificationOutcome",
    "RecipientStatus",
    "Status",
    "SuppressionReason",
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

TEST_STREAM = "test"
"""The stream of the test email (``mailroom send-test-email``, the status page's form)."""


class CampaignStatus(StrEnum):
    """Where a campaign is. Stored as text."""

    DRAFT = "draft"
    """Being written: its content may change; nothing is in its ledger."""
    SCHEDULED = "scheduled"
    """Its content is fixed; it starts sending at ``send_at``."""
    SENDING = "sending"
    """Its audience is going into the ledger and its messages into the outbox."""
    PAUSED = "paused"
    """Stopped by hand or by its error rate (``paused_reason``); its messages not yet sent
    were taken back out of the outbox, and resuming queues them again."""
    CANCELLED = "cancelled"
    """Stopped for good: whoever had not been sent it never will be."""
    FINISHED = "finished"
    """Every recipient in the ledger has an outcome (sent, failed, suppressed or skipped)."""


class RecipientStatus(StrEnum):
    """One recipient's place in a campaign's ledger. Stored as text.

    The ledger row holds ``pending``, ``queued``, ``suppressed`` or ``skipped``; once queued,
    ``sent`` and ``failed`` are the message's own status, read through ``message_pk`` (so the
    two cannot disagree)."""

    PENDING = "pending"
    """In the ledger, no message yet."""
    QUEUED = "queued"
    """Its message is in the outbox (``message_pk``), waiting, being sent or retried."""
    SENT = "sent"
    """Its message was accepted by the relay."""
    FAILED = "failed"
    """Its message was given up (a permanent refusal, out of attempts or time)."""
    SUPPRESSED = "suppressed"
    """Not sent: suppressed or unsubscribed when its message was composed or due."""
    SKIPPED = "skipped"
    """Not sent: the campaign was cancelled, or the contact's message could not be built
    (``reason`` says which)."""

"""What a ``notify`` call did: for each recipient, queued (with the outbox id), skipped or
suppressed, and why (:class:`SkipReason`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from mailroom.consent.preferences import EmailChoice
from mailroom.outbox.vocabulary import NotificationOutcome

__all__ = ["NotifyResult", "RecipientOutcome", "SkipReason"]


class SkipReason:
    """Why a recipient got nothing (``reason`` in the notification log)."""

    NO_ADDRESS = "no_address"
    """The recipient has no email address."""
    OPTED_OUT = EmailChoice.OPTED_OUT
    NOT_OPTED_IN = EmailChoice.NOT_OPTED_IN
    IS_ACTOR = "is_actor"
    """The recipient caused the event; people are not told about their own actions."""
    DUPLICATE = "duplicate"
    """The same address was named twice in one call; it gets one message."""
    NO_RECIPIENTS = "no_recipients"
    """The app named no one, and neither ADMINS nor EMAIL_FALLBACK_TO is set."""
    INVALID_ADDRESS = "invalid_address"
    """The recipient's address (or name) cannot be sent to; the warning logged says why."""
    INVALID_MESSAGE = "invalid_message"
    """The message for this recipient could not be built (a template error for their data,
    a field over a limit); the warning logged says why."""
    KEY_CONFLICT = "idempotency_conflict"
    """The idempotency key was already used for this address with a different request."""


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """What happened for one recipient."""

    recipient: str
    outcome: NotificationOutcome
    reason: str | None = None
    message_pk: int | None = None


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What one ``notify`` call did, recipient by recipient."""

    notification_type: str
    outcomes: tuple[RecipientOutcome, ...] = field(default_factory=tuple)

    @property
    def outbox_ids(self) -> list[int]:
        """The outbox ids of the messages committed, one per recipient sent to (the outbox's
        row ids, not ``Message-ID`` headers)."""
        return [o.message_pk for o in self.outcomes if o.message_pk is not None]

    @property
    def message_ids(self) -> list[int]:
        """Deprecated alias of :attr:`outbox_ids`, kept for this release only.

        The name read as ``Message-ID`` headers, which is what "message id" means everywhere
        else in Mailroom; these are outbox row ids.
        """
        warnings.warn(
            "NotifyResult.message_ids is renamed outbox_ids; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.outbox_ids

    @property
    def skipped(self) -> dict[str, str]:
        """Recipients not sent to (skipped or suppressed) → reason."""
        return {
            o.recipient: o.reason or ""
            for o in self.outcomes
            if o.outcome is not NotificationOutcome.QUEUED
        }

"""Where a suppression came from, in words: the consent log's ``source`` of the change that
made the entry, as the admin pages show it."""

from __future__ import annotations

from mailroom.outbox.vocabulary import SuppressionReason

__all__ = ["ADMIN_SOURCE", "source_label"]

ADMIN_SOURCE = "admin"
"""The consent log's ``source`` for a change made on the admin pages."""

_LABELS = {
    "one_click": "Unsubscribe link (one-click)",
    "link": "Unsubscribe link",
    "mailto": "Unsubscribe by email",
    "preferences": "Preference centre",
    "bounce": "Bounce",
    "complaint": "Complaint",
    "cli": "Manual (CLI)",
    "api": "API",
    ADMIN_SOURCE: "Admin",
}

_BY_REASON = {
    SuppressionReason.HARD_BOUNCE: "Bounce",
    SuppressionReason.COMPLAINT: "Complaint",
    SuppressionReason.UNSUBSCRIBED: "Unsubscribe",
}


def source_label(source: str | None, reason: SuppressionReason | None) -> str:
    """``source`` in words (an unknown one as it is stored: a bounce processor may name
    itself). With no consent-log line to say, the entry's ``reason`` is the best hint."""
    if source is not None:
        return _LABELS.get(source, source)
    if reason is not None and reason in _BY_REASON:
        return _BY_REASON[reason]
    return "Unknown (no consent-log record)"

"""Django signals for what happens to a message, named as Mailroom's event types.

``queued`` is sent by :class:`~mailroom.integrations.django.EmailBackend` when a message is
in the outbox: in the shared mode inside the caller's transaction (a receiver that must only
act on committed mail wraps its work in ``transaction.on_commit``), in the separate mode after
the commit. Keyword arguments: ``message`` (the Django message), ``message_pk``, ``stream``.

The others happen in a worker, which may be another process or machine. ``manage.py
mailroom_worker`` sends them in its own process after the worker recorded them, from the event
log (``mailroom_events``), so a receiver registered in the project's apps runs there:
keyword arguments ``message_pk``, ``recipient``, ``at`` (epoch seconds) and ``detail``.
"""

from __future__ import annotations

from django.dispatch import Signal

from mailroom.outbox.vocabulary import EventType

__all__ = ["SIGNALS", "bounced", "deferred", "failed", "queued", "sent", "suppressed"]

queued = Signal()
sent = Signal()
deferred = Signal()
failed = Signal()
suppressed = Signal()
bounced = Signal()
opened = Signal()
clicked = Signal()
unsubscribed = Signal()

SIGNALS: dict[str, Signal] = {
    EventType.QUEUED.value: queued,
    EventType.SENT.value: sent,
    EventType.DEFERRED.value: deferred,
    EventType.FAILED.value: failed,
    EventType.SUPPRESSED.value: suppressed,
    EventType.BOUNCED.value: bounced,
    EventType.OPENED.value: opened,
    EventType.CLICKED.value: clicked,
    EventType.UNSUBSCRIBED.value: unsubscribed,
}
"""Event type → its signal (the worker command sends those after ``queued``)."""

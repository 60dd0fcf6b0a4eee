"""Notification types and ``notify``: one call that composes and enqueues what an app sends most.

An application registers its types once::

    mailroom.register_notification_type(
        "task.assigned", template="task_assigned", stream="transactional",
        default_on=True, may_opt_out=True, description="A task was assigned to you",
    )
    mailroom.register_notification_type(
        "account.password_reset", template="password_reset", may_opt_out=False,
    )

and then, where the event happens::

    mailroom.notify("task.assigned", to=[assignee], actor=current_user,
                    context={"task": {"title": task.title}}, link=f"/tasks/{task.id}")

For each recipient ``notify`` checks preferences and the suppression list, renders the
template for them (their name, their unsubscribe link), adds the headers (subject prefix,
``Auto-Submitted``, notification type, ``List-Unsubscribe`` + one-click when the type may be
turned off and a public URL is configured), the footer, and a "Ada Lovelace via Acme" sender,
and commits one message per recipient to the outbox. A recipient without an address, who
turned the type off, who is suppressed, or who is the actor is not sent anything: the call does
not fail, and each such recipient is recorded in the notification log with the reason. So is a
recipient whose own message cannot be built (their address or name, a template error on their
data) or whose idempotency key was used for another request: one recipient's failure never
costs the others their mail. Only when such errors leave nobody sent to does the call raise.

The package, by job: ``registry`` (the types), ``recipients`` (what the app passes, made into
recipients), ``notifier`` (planning and committing one call), ``idempotency``, ``results``, and
``default`` (the process's notifier behind :func:`notify`). Each recipient's message is
composed by :mod:`mailroom.compose.personalize`.
"""

from __future__ import annotations

from mailroom.notifications.default import notify
from mailroom.notifications.notifier import Notifier
from mailroom.notifications.recipients import Recipient
from mailroom.notifications.registry import (
    NotificationRegistry,
    NotificationType,
    default_registry,
    register_notification_type,
)
from mailroom.notifications.results import NotifyResult, RecipientOutcome, SkipReason

__all__ = [
    "NotificationRegistry",
    "NotificationType",
    "Notifier",
    "NotifyResult",
    "Recipient",
    "RecipientOutcome",
    "SkipReason",
    "default_registry",
    "notify",
    "register_notification_type",
]

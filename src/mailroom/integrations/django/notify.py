"""``mailroom.notify`` from Django: the same call (preferences, suppression, templates, one
message per recipient), with ``User`` objects as recipients and actor, committed like the
backend's mail.

In the shared mode the whole notification — its messages, their ``queued`` events and the
notification log — is written on Django's connection inside ``transaction.atomic(using=
alias)``: committed with the caller's data, or not at all. In the separate mode
(``MAILROOM["DATABASE_URL"]``) it is committed at once, in that database, whatever the
caller's transaction then does (its result, with the outbox ids, is returned at the call,
which waiting for a commit could not do); call it after your commit, or from
``transaction.on_commit``.

A user is anything with ``email``; Django's ``User`` also gives ``get_full_name()`` (the
name the template sees) and ``pk`` (the key preferences are stored under, ``user:<pk>``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from mailroom.integrations.django.backend import current_settings
from mailroom.integrations.django.connection import borrowed_engine
from mailroom.integrations.django.settings import DjangoMailroomSettings
from mailroom.notifications.notifier import Notifier
from mailroom.notifications.results import NotifyResult
from mailroom.outbox.store import Outbox

__all__ = ["notify"]

_lock = threading.Lock()
_notifiers: dict[int, tuple[DjangoMailroomSettings, Notifier]] = {}


def _notifier(config: DjangoMailroomSettings) -> Notifier:
    """One per settings (they are reread, and a new object made, when Django's change)."""
    with _lock:
        held = _notifiers.get(id(config))
        if held is not None and held[0] is config:
            return held[1]
        engine = borrowed_engine(config.alias) if config.shared else None
        notifier = Notifier(Outbox(config.local, engine=engine))
        _notifiers.clear()  # the settings changed: the old outbox is not used again
        _notifiers[id(config)] = (config, notifier)
        return notifier


def notify(
    notification_type: str,
    to: Iterable[object] | object = None,
    *,
    context: Mapping[str, Any] | None = None,
    actor: object = None,
    link: str | None = None,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> NotifyResult:
    """:meth:`mailroom.notifications.notifier.Notifier.notify`, on Django's settings and
    transaction (see the module docstring)."""
    config = current_settings()
    notifier = _notifier(config)

    def call() -> NotifyResult:
        return notifier.notify(
            notification_type,
            to,
            context=context,
            actor=actor,
            link=link,
            idempotency_key=idempotency_key,
            send_at=send_at,
            metadata=metadata,
        )

    if not config.shared:
        return call()
    with transaction.atomic(using=config.alias):
        return call()

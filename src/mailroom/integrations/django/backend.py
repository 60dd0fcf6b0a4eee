"""``EMAIL_BACKEND = "mailroom.integrations.django.EmailBackend"``: every message Django sends
(``send_mail``, ``EmailMessage.send``, ``mail_admins``, ``AdminEmailHandler``, the auth
forms...) is committed to Mailroom's outbox; a worker delivers it.

Per-message extras are attributes on the message, as django-anymail reads its own::

    message = EmailMultiAlternatives(...)
    message.stream = "notifications"
    message.idempotency_key = f"invoice-{invoice.pk}"
    message.metadata = {"invoice": invoice.pk}
    message.tags = ["billing"]
    message.send_at = timezone.now() + timedelta(hours=1)
    message.track_opens = message.track_clicks = True
    message.envelope_sender = "bounces@example.com"
    message.send()
    message.mailroom_status  # the outbox id (None until the commit in the separate mode)

Called where an event loop runs (an ``async def`` view), where Django allows no query, the
backend commits on a thread of its own and waits for it: no transaction is joined, the message
is committed when ``send()`` returns (see :mod:`mailroom.integrations.django.off_loop`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.signals import setting_changed
from django.db import DatabaseError as DjangoDatabaseError
from sqlalchemy.exc import SQLAlchemyError

from mailroom.errors import EnqueueTimeoutError, MailroomError
from mailroom.integrations.django import signals
from mailroom.integrations.django.connection import forget_engines
from mailroom.integrations.django.off_loop import in_async_context, run_off_loop
from mailroom.integrations.django.outbox import commit_rows, forget_outboxes
from mailroom.integrations.django.rows import check_header_names, outbox_row, read_extras
from mailroom.integrations.django.settings import DjangoMailroomSettings, mailroom_settings
from mailroom.integrations.django.tracking import track

__all__ = ["EmailBackend", "current_settings"]

logger = logging.getLogger(__name__)

_cached: DjangoMailroomSettings | None = None
_cache_lock = threading.Lock()


def current_settings() -> DjangoMailroomSettings:
    """Mailroom's settings from Django's, read once and again after any change to them
    (``override_settings`` in tests sends ``setting_changed``)."""
    global _cached  # noqa: PLW0603 - a one-entry cache
    with _cache_lock:
        if _cached is None:
            _cached = mailroom_settings()
        return _cached


def _forget(**_: Any) -> None:
    global _cached  # noqa: PLW0603
    with _cache_lock:
        _cached = None
    forget_engines()
    forget_outboxes()


setting_changed.connect(_forget, dispatch_uid="mailroom-settings-changed")

# What a failed commit may raise: our own errors (a bad message, a schema to migrate) and
# the database's, through SQLAlchemy or Django.
_SEND_ERRORS = (MailroomError, SQLAlchemyError, DjangoDatabaseError, ValueError)


_dispatch = threading.local()


def _send_queued(
    messages: Sequence[EmailMessage], ids: Sequence[int], rows: Sequence[dict[str, Any]]
) -> None:
    """The ``queued`` signal of each message, with ``send_robust``: the message is committed
    (or will be, with the caller's block) whatever a receiver does, so a receiver's bug must
    not make ``send()`` report a failure, nor keep the other receivers from running. Django
    logs each failure (logger ``django.dispatch``, with the traceback).

    That log may itself send mail (``AdminEmailHandler``, on the ``django`` logger when
    ``DEBUG`` is off) through this backend, whose ``queued`` would fail again: mail sent while
    this thread is in a ``queued`` receiver, or logging its failure, gets no ``queued`` signal
    of its own."""
    if getattr(_dispatch, "active", False):
        return
    _dispatch.active = True
    try:
        for message, message_pk, row in zip(messages, ids, rows, strict=True):
            signals.queued.send_robust(
                EmailBackend, message=message, message_pk=message_pk, stream=row["stream"]
            )
    finally:
        _dispatch.active = False


class EmailBackend(BaseEmailBackend):
    """Commits each message to Mailroom's outbox; returns how many were committed.

    Connection arguments Django passes to its own backends (``host``, ``port``,
    ``username``...) are accepted and, as by Django's base backend, ignored: the worker
    delivers with the settings.
    """

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        try:
            config = current_settings()
        except MailroomError:
            if self.fail_silently:
                return 0
            raise
        now = time.time()
        rows: list[dict[str, Any]] = []
        taken: list[EmailMessage] = []
        for message in email_messages:
            message.mailroom_status = None  # type: ignore[attr-defined]
            if not message.recipients():
                continue  # as Django's SMTP backend: not sent, not counted
            try:
                extras = read_extras(message)
                check_header_names(message)
                sendable, links = track(message, extras, config.local)
                # What Django's SMTP backend sends, byte for byte (its policy takes linesep).
                data = sendable.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]
                # The fingerprint is of the caller's message: the tracked copy has new tokens
                # (and Message-ID) each time, and a retry must match the first send.
                row = outbox_row(sendable, data, extras, config.local, now, original=message)
            except _SEND_ERRORS:
                if self.fail_silently:
                    logger.warning("a message was not queued", exc_info=True)
                    continue
                raise
            if links is not None:
                row["tracked_links"] = links
            rows.append(row)
            taken.append(message)
        count = len(rows)

        def done(ids: list[int]) -> None:
            for message, message_pk in zip(taken, ids, strict=True):
                message.mailroom_status = message_pk  # type: ignore[attr-defined]
            _send_queued(taken, ids, rows)

        try:
            _commit(config, rows, done)
        except EnqueueTimeoutError:
            if self.fail_silently:
                logger.warning("%d message(s) may not be queued", count, exc_info=True)
                return 0
            raise
        except _SEND_ERRORS:
            if self.fail_silently:
                logger.warning("%d message(s) were not queued", count, exc_info=True)
                return 0
            raise
        return count


def _commit(
    config: DjangoMailroomSettings,
    rows: Sequence[dict[str, Any]],
    done: Callable[[list[int]], None],
) -> None:
    """:func:`commit_rows`; where an event loop runs, on a thread of its own that this one
    waits for: no query is allowed on this thread, and there is no transaction to join
    (:mod:`mailroom.integrations.django.off_loop`)."""
    if rows and in_async_context():
        run_off_loop(
            lambda: commit_rows(config, rows, done),
            timeout=config.async_timeout,
            what=_name_messages(rows),
        )
        return
    commit_rows(config, rows, done)


def _name_messages(rows: Sequence[dict[str, Any]], shown: int = 3) -> str:
    """The messages of a send by Message-ID, as an operator looks them up in the outbox."""
    ids = ", ".join(row["message_id"] for row in rows[:shown])
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return f"{len(rows)} message(s) (Message-ID {ids}{more})"

"""``mailroom.send`` and friends: the outbox of the process, made on first use.

Nothing is read at import: the settings are loaded (files and environment) the first time a
message is sent, or when the application calls :func:`configure` with its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from mailroom.config import Settings, load_settings
from mailroom.message import Message
from mailroom.outbox.store import Outbox

__all__ = ["configure", "default_outbox", "send", "send_many"]

_lock = threading.Lock()
_outbox: Outbox | None = None


def configure(settings: Settings | None = None) -> Outbox:
    """Use these settings (default: load them afresh) for ``mailroom.send`` from now on."""
    global _outbox  # noqa: PLW0603 - the one process-wide outbox, replaced on purpose
    with _lock:
        if _outbox is not None:
            _outbox.dispose()
        _outbox = Outbox(settings or load_settings())
        return _outbox


def default_outbox() -> Outbox:
    """The process's outbox, configured from the settings files and environment if needed."""
    return _outbox if _outbox is not None else configure()


def send(
    message: Message | None = None,
    /,
    *,
    stream: str = "transactional",
    send_at: datetime | None = None,
    idempotency_key: str | None = None,
    **fields: Any,
) -> int:
    """Commit one message to the outbox and return its id. See :meth:`Outbox.send`."""
    return default_outbox().send(
        message, stream=stream, send_at=send_at, idempotency_key=idempotency_key, **fields
    )


def send_many(
    messages: Iterable[Message],
    *,
    stream: str = "transactional",
    send_at: datetime | None = None,
    idempotency_keys: Sequence[str | None] | None = None,
) -> list[int]:
    """Commit many messages in one transaction. See :meth:`Outbox.send_many`."""
    return default_outbox().send_many(
        messages, stream=stream, send_at=send_at, idempotency_keys=idempotency_keys
    )

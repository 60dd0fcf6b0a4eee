"""The worker's claim reads each claimed row once, also when the suppression list is not
empty: the consent facts the check at claim needs come back with the claimed rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from mailroom.compose.templates import Template
from mailroom.config import load_settings
from mailroom.consent.suppression import suppress
from mailroom.delivery.worker import Worker
from mailroom.message import Message
from mailroom.notifications import NotificationRegistry, Notifier
from mailroom.outbox import database
from mailroom.outbox.schema import messages, suppressions
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import SuppressionReason


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    box = Outbox(
        load_settings(
            environ={"DATABASE_URL": database_url, "DEFAULT_FROM_EMAIL": "app@example.com"}
        )
    )
    database.upgrade(box.engine)
    yield box
    box.dispose()


def test_a_claim_with_suppressions_selects_the_messages_once(outbox: Outbox) -> None:
    registry = NotificationRegistry()
    registry.register(
        "task.assigned", template=Template("task", subject="Task", text="A task for you\n")
    )
    notifier = Notifier(outbox, registry)
    noted = notifier.notify("task.assigned", to=["zoe@example.com", "bob@example.com"])
    plain = outbox.send(Message(to=["gone@example.com"], subject="s", text="t"))
    suppress(outbox.engine, "zoe@example.com", SuppressionReason.UNSUBSCRIBED)
    suppress(outbox.engine, "gone@example.com", SuppressionReason.HARD_BOUNCE)

    worker = Worker(outbox.settings)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))  # the SQL text

    event.listen(worker.engine, "before_cursor_execute", record)
    try:
        deliverable, withheld = worker.claims.claim(limit=10, max_bytes=10**9)
    finally:
        event.remove(worker.engine, "before_cursor_execute", record)
        worker.engine.dispose()

    # The check ran, and withheld what it should: Zoe's (she unsubscribed from the type) and
    # the plain message to a bounced address; Bob's goes out.
    assert {m.recipients for m in deliverable} == {("bob@example.com",)}
    assert sorted(o.message.id for o in withheld) == sorted([noted.outbox_ids[0], plain])
    assert any(f"FROM {suppressions.name}" in s for s in statements)
    selects = [s for s in statements if s.startswith("SELECT") and f"FROM {messages.name}" in s]
    assert len(selects) == 1, selects

"""The suppression list on a real outbox: suppress and unsuppress are logged, and the check a
worker makes when it claims messages."""

from __future__ import annotations

import time

from sqlalchemy import update

from mailroom.consent import queries as q
from mailroom.consent.scopes import list_scope
from mailroom.consent.suppression import suppress, suppressed_for_messages, unsuppress
from mailroom.message import Message
from mailroom.notifications import Notifier, Recipient
from mailroom.outbox import lease_queries
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status, SuppressionReason

ZOE = Recipient("zoe@example.com", "Zoë", key="user:7")


def history(outbox: Outbox, recipient: str) -> list[tuple[str, str, str]]:
    with outbox.engine.connect() as connection:
        rows = q.consent_history(connection, recipient)
    return [(r["action"], r["scope"], r["source"]) for r in rows]


def test_suppress_and_unsuppress_are_logged(outbox: Outbox) -> None:
    suppress(outbox.engine, "Ada <ADA@example.com>", SuppressionReason.COMPLAINT, note="FBL")
    suppress(outbox.engine, "ada@example.com", SuppressionReason.MANUAL, scope=list_scope("news"))
    with outbox.engine.connect() as connection:
        entries = {(e.scope, e.reason) for e in q.list_suppressions(connection, "ada@example.com")}
    assert entries == {
        ("all", SuppressionReason.COMPLAINT),
        ("list:news", SuppressionReason.MANUAL),
    }
    assert unsuppress(outbox.engine, "ada@example.com") is True
    assert unsuppress(outbox.engine, "ada@example.com") is False
    assert history(outbox, "ada@example.com") == [
        ("suppressed", "all", "api"),
        ("suppressed", "list:news", "api"),
        ("unsuppressed", "all", "api"),
    ]


def test_suppressed_for_messages_at_delivery_time(notifier: Notifier, outbox: Outbox) -> None:
    """What a worker calls after claiming: suppressions made after enqueue still apply."""
    optional = notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    required = notifier.notify("account.password_reset", to=[ZOE], context={"code": "1"})
    plain = outbox.send(Message(to=["zoe@example.com", "bob@example.com"], subject="s", text="t"))
    ids = [*optional.outbox_ids, *required.outbox_ids, plain]
    now = time.time()
    with outbox.engine.begin() as connection:
        claimed = lease_queries.claim_due(
            connection, now=now, limit=10, lease_token="t", lease_until=now + 60
        )
    assert sorted(m.id for m in claimed) == sorted(ids)

    with outbox.engine.connect() as connection:
        assert suppressed_for_messages(connection, claimed, now) == {}
    suppress(outbox.engine, "zoe@example.com", SuppressionReason.UNSUBSCRIBED)
    with outbox.engine.connect() as connection:
        found = suppressed_for_messages(connection, claimed, now)
    # Unsubscribed stops the optional notification only.
    assert found == {optional.outbox_ids[0]: {"zoe@example.com": SuppressionReason.UNSUBSCRIBED}}

    suppress(outbox.engine, "zoe@example.com", SuppressionReason.HARD_BOUNCE)
    with outbox.engine.connect() as connection:
        found = suppressed_for_messages(connection, claimed, now)
    assert set(found) == set(ids)
    assert found[plain] == {"zoe@example.com": SuppressionReason.HARD_BOUNCE}  # bob is not


def test_suppressed_status_is_final(outbox: Outbox) -> None:
    message_pk = outbox.send(Message(to=["zoe@example.com"], subject="s", text="t"))
    with outbox.engine.begin() as connection:
        connection.execute(
            update(messages).where(messages.c.id == message_pk).values(status="suppressed")
        )
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.status is Status.SUPPRESSED
    assert outbox.counts()["suppressed"] == 1

"""The event log's writes on a real SQLite file and PostgreSQL: every field read back as
written, and a batch larger than one statement's share of rows."""

from __future__ import annotations

from mailroom.message import Message
from mailroom.outbox.event_queries import EventRecord, events_of, record_events
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType, HitLabel


def test_every_field_is_read_back_as_written(outbox: Outbox) -> None:
    message_pk = outbox.send(Message(to=["a@example.com"], subject="s", text="t"))
    written = [
        EventRecord(message_pk, "a@example.com", EventType.OPENED, 10.5, label=HitLabel.PREFETCH),
        EventRecord(
            message_pk,
            "a@example.com",
            EventType.CLICKED,
            11.25,
            label=HitLabel.HUMAN,
            link_index=3,
            detail={"agent": "Mozilla/5.0 ünï\t\n\\ \\N", "nested": {"n": [1, 2.5, None]}},
        ),
        EventRecord(None, "b\\N@example.com", EventType.UNSUBSCRIBED, 12.0),
    ]
    with outbox.engine.begin() as connection:
        assert record_events(connection, written) == 3
        assert record_events(connection, []) == 0
    with outbox.engine.connect() as connection:
        found = list(events_of(connection, message_pk))
    # Oldest first: these times are long before the queued event the send wrote.
    assert found[:2] == written[:2]
    assert [e.type for e in found[2:]] == [EventType.QUEUED]


def test_a_batch_of_many_rows_is_written_whole(outbox: Outbox) -> None:
    message_pk = outbox.send(Message(to=["a@example.com"], subject="s", text="t"))
    batch = [
        EventRecord(message_pk, f"r{i}@example.com", EventType.SENT, 100.0 + i, detail={"i": i})
        for i in range(1234)
    ]
    with outbox.engine.begin() as connection:
        assert record_events(connection, iter(batch)) == 1234
    with outbox.engine.connect() as connection:
        found = [e for e in events_of(connection, message_pk) if e.type is EventType.SENT]
    assert found == batch

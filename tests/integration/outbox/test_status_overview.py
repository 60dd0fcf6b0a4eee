"""The status page's figures (``mailroom.outbox.status.status_overview``) on SQLite and
PostgreSQL: outcomes per hour, the send rate now, the newest errors, paused streams.

``outbox`` is the shared fixture of tests/conftest.py: a fresh, migrated database.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, update

from mailroom.message import Message
from mailroom.outbox import stream_queries
from mailroom.outbox.activity_queries import HOUR, outcomes_per_hour
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.schema import messages
from mailroom.outbox.status import status_overview
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType, Status

# Half an hour into a clock hour (2_000_001_600 is one's start): the chart's last hour began
# 30 minutes ago.
NOW = 2_000_001_600.0 + 1800
HOUR_STARTED = NOW - NOW % HOUR


def _messages(outbox: Outbox, count: int, stream: str = "transactional") -> list[int]:
    return [
        outbox.send(Message(to=[f"u{i}@example.com"], subject="Hi", text="hi"), stream=stream)
        for i in range(count)
    ]


def _event(message_pk: int, kind: EventType, at: float, **detail: object) -> EventRecord:
    return EventRecord(message_pk, f"r{message_pk}@example.com", kind, at, detail=detail or None)


def test_outcomes_per_hour_are_counted_in_clock_hours_with_empty_hours_as_zeros(
    outbox: Outbox,
) -> None:
    ids = _messages(outbox, 3)
    with outbox.engine.begin() as connection:
        record_events(
            connection,
            [
                # The current hour: two sent, one deferred.
                _event(ids[0], EventType.SENT, NOW - 60),
                _event(ids[1], EventType.SENT, HOUR_STARTED),  # its first instant counts here
                _event(ids[2], EventType.DEFERRED, NOW - 5, code=451),
                # The hour before, at its last instant: not the current one.
                _event(ids[2], EventType.FAILED, HOUR_STARTED - 0.001, code=550),
                # The chart's first hour, and just before it (left out).
                _event(ids[0], EventType.SENT, HOUR_STARTED - 23 * HOUR + 1),
                _event(ids[0], EventType.SENT, HOUR_STARTED - 23 * HOUR - 1),
                # Not outcomes of sending: never charted.
                _event(ids[0], EventType.QUEUED, NOW - 60),
                _event(ids[0], EventType.OPENED, NOW - 30),
            ],
        )

    hours = status_overview(outbox.engine, now=NOW).hours

    assert len(hours) == 24
    assert [hour.start for hour in hours] == [HOUR_STARTED - (23 - i) * HOUR for i in range(24)]
    current, before, first = hours[-1], hours[-2], hours[0]
    assert (current.sent, current.deferred, current.failed) == (2, 1, 0)
    assert (before.sent, before.deferred, before.failed) == (0, 0, 1)
    assert (first.sent, first.deferred, first.failed) == (1, 0, 0)
    assert all(hour.total == 0 for hour in hours[1:-2])


def test_send_rate_counts_messages_not_recipients(outbox: Outbox) -> None:
    ids = _messages(outbox, 4)
    with outbox.engine.begin() as connection:
        record_events(
            connection,
            [
                _event(ids[0], EventType.SENT, NOW - 10),
                # A second recipient of the same message: still one message sent.
                EventRecord(ids[0], "other@example.com", EventType.SENT, NOW - 9),
                _event(ids[1], EventType.SENT, NOW - 120),
                _event(ids[2], EventType.SENT, NOW - 299),
                _event(ids[3], EventType.SENT, NOW - 301),  # before the five minutes
                _event(ids[3], EventType.DEFERRED, NOW - 1),  # not a send
            ],
        )

    overview = status_overview(outbox.engine, now=NOW)

    assert overview.sent_last_minute == 1
    assert overview.sent_last_5_minutes == 3
    assert overview.rate_per_minute == 0.6


def test_last_errors_newest_first_with_the_relays_reply(outbox: Outbox) -> None:
    ids = _messages(outbox, 2)
    deferred = [
        _event(ids[0], EventType.DEFERRED, NOW - 100 + i, code=451, server_text=f"busy {i}")
        for i in range(8)
    ]
    failed = [
        _event(
            ids[1],
            EventType.FAILED,
            NOW - 50,
            code=550,
            enhanced_status="5.1.1",
            server_text="no such user",
        ),
        _event(ids[1], EventType.FAILED, NOW - 500, code=550),
        # An error met before any reply: no detail at all.
        _event(ids[1], EventType.FAILED, NOW - 40),
    ]
    with outbox.engine.begin() as connection:
        record_events(connection, [*deferred, *failed, _event(ids[0], EventType.SENT, NOW)])

    errors = status_overview(outbox.engine, now=NOW).last_errors

    assert len(errors) == 10
    assert [error.at for error in errors] == sorted((e.at for e in errors), reverse=True)
    newest = errors[0]
    assert (newest.outcome, newest.reply, newest.message_pk) == (
        EventType.FAILED,
        "no reply recorded",
        ids[1],
    )
    assert errors[1].reply == "550 5.1.1 no such user"
    assert errors[1].recipient == f"r{ids[1]}@example.com"
    assert errors[2].reply == "451 busy 7"
    assert errors[2].outcome is EventType.DEFERRED
    # Of the eleven, the oldest (500 s ago) is the one the ten newest leave out.
    assert min(error.at for error in errors) == NOW - 100


def test_counts_per_status_and_stream_and_paused_streams(outbox: Outbox) -> None:
    transactional = _messages(outbox, 3)
    bulk = _messages(outbox, 2, stream="bulk")
    with outbox.engine.begin() as connection:
        connection.execute(
            update(messages)
            .where(messages.c.id == transactional[0])
            .values(status=Status.SENT.value, sent_at=NOW)
        )
        connection.execute(
            update(messages).where(messages.c.id == bulk[0]).values(status=Status.FAILED.value)
        )
        stream_queries.pause_stream(
            connection, "bulk", until=NOW + 600, reason="relay refused our login\nCheck the user"
        )
        stream_queries.pause_stream(connection, "old", until=NOW - 1, reason="over")

    overview = status_overview(outbox.engine, now=NOW)

    assert overview.counts[Status.QUEUED.value] == 3
    assert overview.counts[Status.CANCELLED.value] == 0
    assert overview.counts_by_stream == {
        "bulk": {Status.QUEUED.value: 1, Status.FAILED.value: 1},
        "transactional": {Status.QUEUED.value: 2, Status.SENT.value: 1},
    }
    [paused] = overview.paused_streams
    assert (paused.name, paused.paused_until, paused.waiting) == ("bulk", NOW + 600, 1)
    assert (paused.reason, paused.advice) == ("relay refused our login", "Check the user")


def test_an_empty_outbox_has_zeros_everywhere(outbox: Outbox) -> None:
    overview = status_overview(outbox.engine, now=NOW)

    assert [hour.total for hour in overview.hours] == [0] * 24
    assert (overview.sent_last_minute, overview.sent_last_5_minutes) == (0, 0)
    assert overview.last_errors == []
    assert overview.paused_streams == []
    assert overview.counts_by_stream == {}


def test_the_hourly_count_reads_only_the_events_index_on_sqlite(outbox: Outbox) -> None:
    if outbox.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans a small table as a sequential scan, index or not")
    executed: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    with outbox.engine.connect() as connection:
        event.listen(connection, "before_cursor_execute", keep)
        outcomes_per_hour(connection, start=NOW - 24 * HOUR, hours=24)
        event.remove(connection, "before_cursor_execute", keep)
        [(statement, parameters)] = [run for run in executed if run[0].startswith("SELECT")]
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        details = " ".join(str(row[-1]) for row in plan)

    assert "USING COVERING INDEX ix_mailroom_events_type_at" in details, details

"""The outbox's state for people (``mailroom.outbox.status``) on SQLite and PostgreSQL.

``outbox`` is the shared fixture of tests/conftest.py: a fresh, migrated database.
"""

from __future__ import annotations

from sqlalchemy import update

from mailroom.message import Message
from mailroom.outbox import queries, stream_queries
from mailroom.outbox.schema import messages
from mailroom.outbox.status import outbox_status
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status

NOW = 2_000_000_000.0


def test_counts_rates_failures_and_pauses(outbox: Outbox) -> None:
    ids = [
        outbox.send(Message(to=[f"u{i}@example.com"], subject="Hi", text="hello")) for i in range(4)
    ]
    sent_at = {ids[0]: NOW - 30, ids[1]: NOW - 600, ids[2]: NOW - 7200}
    with outbox.engine.begin() as connection:
        for message_pk, at in sent_at.items():
            connection.execute(
                update(messages)
                .where(messages.c.id == message_pk)
                .values(status=Status.SENT.value, sent_at=at)
            )
        queries.record_attempts(
            connection,
            [
                {
                    "message_pk": ids[3],
                    "attempt": 1,
                    "at": NOW - 5,
                    "duration_ms": 10.0,
                    "recipient": "u3@example.com",
                    "transport": "smtp",
                    "outcome": "deferred",
                    "code": 451,
                    "enhanced_status": "4.7.1",
                    "server_text": "greylisted",
                    "possible_duplicate": False,
                    "worker": "w1",
                }
            ],
        )
        stream_queries.pause_stream(
            connection, "bulk", until=NOW + 60, reason="relay refused us\nfix the password"
        )
        stream_queries.pause_stream(connection, "old", until=NOW - 60, reason="long over")

    state = outbox_status(outbox.engine, now=NOW)

    assert state["counts"][Status.SENT.value] == 3
    assert state["counts"][Status.QUEUED.value] == 1
    assert state["counts"][Status.FAILED.value] == 0  # every status has a count
    assert state["sent_last_minute"] == 1
    assert state["sent_last_hour"] == 2
    assert state["rate_per_second_last_minute"] == round(1 / 60, 2)
    assert state["rate_per_minute_last_hour"] == round(2 / 60, 2)
    [failure] = state["recent_failures"]
    assert failure["message_pk"] == ids[3]
    assert failure["server_text"] == "greylisted"
    assert state["paused_streams"] == [
        {
            "name": "bulk",
            "paused_until": NOW + 60,
            "pause_reason": "relay refused us",
            "advice": "fix the password",
        }
    ]

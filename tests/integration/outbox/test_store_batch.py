"""``Outbox.send_batch``: items with their own stream, send time and key, committed in one
transaction or not at all, every faulty item named by position (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from mailroom.errors import BatchError, IdempotencyConflictError, InvalidAddressError
from mailroom.message import Message, content_fingerprint
from mailroom.outbox.schema import events, messages
from mailroom.outbox.store import BatchItem, Outbox
from mailroom.outbox.vocabulary import Status


def note(n: int) -> Message:
    return Message(to=[f"user{n}@example.com"], subject=f"Note {n}", text="x")


def test_each_item_keeps_its_own_stream_send_time_and_key(outbox: Outbox) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    ids = outbox.send_batch(
        [
            BatchItem(note(0)),
            BatchItem(note(1), stream="bulk", send_at=later),
            BatchItem(note(2), idempotency_key="k"),
        ]
    )
    stored = [outbox.get(message_pk) for message_pk in ids]
    assert [s.stream for s in stored if s] == ["transactional", "bulk", "transactional"]
    assert [s.status for s in stored if s] == [Status.QUEUED, Status.SCHEDULED, Status.QUEUED]
    assert stored[1] is not None
    assert stored[1].due_at == pytest.approx(later.timestamp())
    assert outbox.send_batch([BatchItem(note(2), idempotency_key="k")]) == [ids[2]]


def test_a_batch_with_faulty_items_commits_nothing_and_names_each(outbox: Outbox) -> None:
    outbox.send_batch([BatchItem(note(9), idempotency_key="taken")])
    with pytest.raises(BatchError) as caught:
        outbox.send_batch(
            [
                BatchItem(note(0)),
                BatchItem(Message(to=["nobody"], text="x")),
                BatchItem(note(2), stream=""),
                BatchItem(note(3)),
            ]
        )
    assert sorted(caught.value.errors) == [1, 2]
    assert isinstance(caught.value.errors[1], InvalidAddressError)
    assert caught.value.errors[2].field == "stream"
    assert "message 1" in str(caught.value)
    assert "nothing was committed" in str(caught.value)
    # A key already naming other content fails the batch inside its transaction.
    with pytest.raises(BatchError) as conflict:
        outbox.send_batch([BatchItem(note(5)), BatchItem(note(6), idempotency_key="taken")])
    assert isinstance(conflict.value.errors[1], IdempotencyConflictError)
    assert outbox.counts()[Status.QUEUED] == 1  # only the first, separate message


def test_a_given_fingerprint_is_what_the_key_is_compared_on(outbox: Outbox) -> None:
    """The API's tracked messages differ on every call; the request before tracking does not."""
    request = note(0)
    sent = Message(to=request.to, subject=request.subject, text="x", html="<p>tracked 1</p>")
    again = Message(to=request.to, subject=request.subject, text="x", html="<p>tracked 2</p>")
    digest = content_fingerprint(request, stream="transactional")
    first = outbox.send_batch([BatchItem(sent, idempotency_key="t", fingerprint=digest)])
    second = outbox.send_batch([BatchItem(again, idempotency_key="t", fingerprint=digest)])
    assert first == second


def test_each_id_of_a_large_batch_names_its_own_message_after_the_newest_were_deleted(
    outbox: Outbox,
) -> None:
    # SQLite's ids are worked out from the last one (no RETURNING): they must hold when the
    # largest ids were deleted (a new row takes the largest left + 1) and across the
    # statements a batch of more than one statement's rows takes.
    first = outbox.send_batch([BatchItem(note(n)) for n in range(10)])
    with outbox.engine.begin() as connection:
        connection.execute(delete(messages).where(messages.c.id >= first[5]))
    ids = outbox.send_batch([BatchItem(note(1000 + n)) for n in range(2500)])
    assert len(set(ids)) == 2500
    with outbox.engine.connect() as connection:
        subjects = dict(
            connection.execute(
                select(messages.c.id, messages.c.subject).where(messages.c.id.in_(ids))
            ).all()
        )
        queued = connection.execute(
            select(func.count()).select_from(events).where(events.c.message_pk.in_(ids))
        ).scalar_one()
    assert [subjects[message_pk] for message_pk in ids] == [f"Note {1000 + n}" for n in range(2500)]
    assert queued == 2500  # one "queued" event each, in the same transaction

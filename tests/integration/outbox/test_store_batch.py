"""``Outbox.send_batch``: items with their own stream, send time and key, committed in one
transaction or not at all, every faulty item named by position (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailroom.errors import BatchError, IdempotencyConflictError, InvalidAddressError
from mailroom.message import Message, content_fingerprint
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

"""``GroupCommit``: single sends that wait together are committed together, each answered
with its own id or its own error, and only after the commit (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from functools import partial

import pytest

from mailroom.errors import IdempotencyConflictError, InvalidAddressError, MessageError
from mailroom.message import Message
from mailroom.outbox.batch_items import BatchItem
from mailroom.outbox.group_commit import GroupCommit
from mailroom.outbox.store import Outbox


def note(n: int, to: str | None = None) -> Message:
    return Message(to=[to or f"user{n}@example.com"], subject=f"Note {n}", text="x")


class Held:
    """A prepare the writer thread waits in until released: what is submitted meanwhile
    waits too, and forms the next group."""

    def __init__(self, item: BatchItem) -> None:
        self.item = item
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> BatchItem:
        self.entered.set()
        assert self.release.wait(10)
        return self.item

    def hold(self, committer: GroupCommit) -> Future[int]:
        future = committer.submit(self)
        assert self.entered.wait(10)
        return future


def test_sends_waiting_together_are_committed_together_each_with_its_own_answer(
    outbox: Outbox,
) -> None:
    committer = GroupCommit(outbox)
    commits: list[int] = []
    original = outbox.send_batch_each

    def counted(items: Sequence[BatchItem]) -> list[int | MessageError]:
        commits.append(len(items))
        return original(items)

    outbox.send_batch_each = counted  # type: ignore[method-assign]
    held = Held(BatchItem(note(0)))
    try:
        first = held.hold(committer)
        good = [committer.submit(partial(BatchItem, note(n))) for n in range(1, 4)]
        bad_address = committer.submit(lambda: BatchItem(note(4, to="nobody")))

        def refused() -> BatchItem:
            raise MessageError("to", "refused before the commit")

        bad_prepare = committer.submit(refused)
        assert not first.done()  # nothing answered before the commit
        held.release.set()
        ids = [first.result(10), *(future.result(10) for future in good)]
        with pytest.raises(InvalidAddressError):
            bad_address.result(10)
        with pytest.raises(MessageError, match="refused before the commit"):
            bad_prepare.result(10)
    finally:
        committer.close()
    assert commits == [1, 4]  # the first alone, then the four that waited behind it
    assert len(set(ids)) == 4
    assert [outbox.get(message_pk).subject for message_pk in ids] == [  # type: ignore[union-attr]
        f"Note {n}" for n in range(4)
    ]


def test_the_same_key_in_one_group_is_one_message_and_other_content_a_conflict(
    outbox: Outbox,
) -> None:
    committer = GroupCommit(outbox)
    held = Held(BatchItem(note(0)))
    try:
        blocker = held.hold(committer)
        once = committer.submit(lambda: BatchItem(note(1), idempotency_key="g-1"))
        again = committer.submit(lambda: BatchItem(note(1), idempotency_key="g-1"))
        other = committer.submit(lambda: BatchItem(note(2), idempotency_key="g-1"))
        held.release.set()
        blocker.result(10)
        assert once.result(10) == again.result(10)
        with pytest.raises(IdempotencyConflictError):
            other.result(10)
    finally:
        committer.close()


def test_close_commits_what_is_waiting_and_many_threads_get_distinct_ids(
    outbox: Outbox,
) -> None:
    committer = GroupCommit(outbox, max_group=7)
    found: list[int] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        message_pk = committer.submit(lambda: BatchItem(note(n))).result(30)
        with lock:
            found.append(message_pk)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    waiting = committer.submit(lambda: BatchItem(note(99)))
    committer.close()
    assert waiting.done()
    assert outbox.get(waiting.result()) is not None
    assert len(set(found)) == 40

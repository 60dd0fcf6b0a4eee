"""The operators' API (``mailroom.outbox.operations``) on a real SQLite file and PostgreSQL.

``outbox`` is the shared fixture of tests/conftest.py: a fresh, migrated database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from mailroom.errors import NothingSelectedError
from mailroom.message import Message
from mailroom.outbox import lease_queries, operations, queries
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import FINAL, Status

NOW = 2_000_000_000.0
"""A fixed "now" (2033), later than any row these tests enqueue, so ages are exact."""
DAY = 86_400.0


@pytest.fixture
def engine(outbox: Outbox) -> Engine:
    return outbox.engine


def enqueue(outbox: Outbox, to: str, *, stream: str = "transactional", subject: str = "Hi") -> int:
    return outbox.send(Message(to=[to], subject=subject, text="hello"), stream=stream)


def set_rows(engine: Engine, ids: Sequence[int], **values: Any) -> None:
    """Put messages in a given state directly, as a worker or time would have."""
    with engine.begin() as connection:
        connection.execute(update(messages).where(messages.c.id.in_(list(ids))).values(**values))


def log_attempts(engine: Engine, message_pk: int, count: int) -> None:
    rows = [
        {
            "message_pk": message_pk,
            "attempt": n,
            "at": NOW - 100 + n,
            "duration_ms": 12.5,
            "recipient": "ada@example.com",
            "transport": "smtp",
            "outcome": "deferred" if n < count else "failed",
            "code": 451,
            "enhanced_status": "4.3.0",
            "server_text": f"try {n}",
            "possible_duplicate": False,
            "worker": "w1",
        }
        for n in range(1, count + 1)
    ]
    with engine.begin() as connection:
        queries.record_attempts(connection, rows)


def one_of_each(outbox: Outbox) -> dict[Status, int]:
    """One message in every status, created ``NOW - 10 days``, last changed ``NOW - 8 days``."""
    ids = {status: enqueue(outbox, f"{status.value}@example.com") for status in Status}
    for status, message_pk in ids.items():
        set_rows(
            outbox.engine,
            [message_pk],
            status=status.value,
            created_at=NOW - 10 * DAY,
            updated_at=NOW - 8 * DAY,
            due_at=NOW + DAY,
            attempts=3,
            lease_token="lease" if status is Status.SENDING else None,
        )
    return ids


def statuses(engine: Engine) -> dict[int, Status]:
    with engine.connect() as connection:
        rows = connection.execute(select(messages.c.id, messages.c.status))
        return {row.id: Status(row.status) for row in rows}


def listed(engine: Engine, **filters: Any) -> list[int]:
    with engine.connect() as connection:
        return [row.id for row in operations.list_messages(connection, limit=1000, **filters)]


# -- list -------------------------------------------------------------------------------


def test_list_filters(outbox: Outbox, engine: Engine) -> None:
    ada = enqueue(outbox, "Ada.Lovelace@Example.com")
    bob = enqueue(outbox, "bob@example.org", stream="bulk")
    underscore = enqueue(outbox, "first_last@example.com")
    lookalike = enqueue(outbox, "firstxlast@example.com")
    set_rows(engine, [ada], status=Status.FAILED.value, created_at=NOW - 3 * DAY)
    set_rows(engine, [bob], created_at=NOW - DAY)
    set_rows(engine, [underscore, lookalike], created_at=NOW - 60)

    assert listed(engine) == [lookalike, underscore, bob, ada]  # newest first
    assert listed(engine, status=Status.FAILED) == [ada]
    assert listed(engine, status=Status.QUEUED) == [lookalike, underscore, bob]
    assert listed(engine, stream="bulk") == [bob]
    assert listed(engine, recipient="ADA.lovelace@example") == [ada]  # any case
    assert listed(engine, recipient="example.org") == [bob]
    # LIKE's wildcards in the needle are literal text.
    assert listed(engine, recipient="t_l") == [underscore]
    assert listed(engine, recipient="%") == []
    assert listed(engine, older_than=NOW - 2 * DAY) == [ada]
    assert listed(engine, newer_than=NOW - 2 * DAY) == [lookalike, underscore, bob]
    assert listed(engine, older_than=NOW - 3600, newer_than=NOW - 2 * DAY) == [bob]
    assert listed(engine, ids=[ada, bob]) == [bob, ada]
    assert listed(engine, ids=[]) == []
    assert listed(engine, status=Status.QUEUED, recipient="example.com") == [lookalike, underscore]

    with engine.connect() as connection:
        assert operations.count_messages(connection) == 4
        assert operations.count_messages(connection, recipient="example.com") == 3
        [row] = operations.list_messages(connection, ids=[ada], limit=1)
    assert row.recipients == ("Ada.Lovelace@example.com",)  # the domain is normalised
    assert row.status is Status.FAILED
    assert row.subject == "Hi"
    assert row.created_at == NOW - 3 * DAY


def test_list_matches_a_non_ascii_recipient(outbox: Outbox, engine: Engine) -> None:
    jurgen = enqueue(outbox, "jürgen@example.com")
    enqueue(outbox, "jurgen@example.com")
    assert listed(engine, recipient="jürgen") == [jurgen]
    assert listed(engine, recipient="RGEN@EXAMPLE") == listed(engine)


def test_list_pages_by_id(outbox: Outbox, engine: Engine) -> None:
    ids = outbox.send_many(
        [Message(to=[f"user{i}@example.com"], subject=f"n{i}", text="x") for i in range(23)]
    )
    pages: list[list[int]] = []
    before: int | None = None
    with engine.connect() as connection:
        while True:
            page = operations.list_messages(connection, limit=10, before_id=before)
            if not page:
                break
            pages.append([row.id for row in page])
            before = page[-1].id
    assert [len(page) for page in pages] == [10, 10, 3]
    assert [i for page in pages for i in page] == sorted(ids, reverse=True)
    with engine.connect() as connection, pytest.raises(ValueError, match="limit"):
        operations.list_messages(connection, limit=0)


def test_message_detail_and_attempts(outbox: Outbox, engine: Engine) -> None:
    message_pk = enqueue(outbox, "ada@example.com", subject="Your receipt")
    other = enqueue(outbox, "bob@example.com")
    log_attempts(engine, other, 1)
    log_attempts(engine, message_pk, 3)
    with engine.connect() as connection:
        detail = operations.message_detail(connection, message_pk)
        log = operations.attempts_for(connection, message_pk)
        assert operations.message_detail(connection, 999_999) is None
        assert operations.attempts_for(connection, 999_999) == []
    assert detail is not None
    assert detail.subject == "Your receipt"
    assert detail.recipients == ("ada@example.com",)
    assert detail.status is Status.QUEUED
    assert b"Subject: Your receipt" in detail.data
    assert detail.message_id.encode() in detail.data
    assert [a.attempt for a in log] == [1, 2, 3]
    assert [a.server_text for a in log] == ["try 1", "try 2", "try 3"]
    assert log[-1].outcome == "failed"
    assert log[0].code == 451


# -- retry and cancel --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "allowed", "becomes"),
    [
        (operations.retry, operations.RETRYABLE, Status.QUEUED),
        (operations.cancel, operations.CANCELLABLE, Status.CANCELLED),
    ],
    ids=["retry", "cancel"],
)
def test_a_change_of_everything_touches_only_the_states_it_may_change(
    outbox: Outbox,
    engine: Engine,
    change: Callable[..., int],
    allowed: tuple[Status, ...],
    becomes: Status,
) -> None:
    """Retry: failed, deferred, cancelled; cancel: queued, scheduled, deferred. Never a message
    in ``sending`` (a worker holds it) or ``sent``."""
    ids = one_of_each(outbox)
    with engine.begin() as connection:
        assert change(connection, now=NOW, everything=True) == 3
    after = statuses(engine)
    for status, message_pk in ids.items():
        assert after[message_pk] is (becomes if status in allowed else status)


def test_retry_makes_messages_due_now_with_a_fresh_allowance(
    outbox: Outbox, engine: Engine
) -> None:
    ids = one_of_each(outbox)
    with engine.begin() as connection:
        assert operations.retry(connection, now=NOW, everything=True) == 3
    with engine.connect() as connection:
        retried = operations.message_detail(connection, ids[Status.FAILED])
        sending = operations.message_detail(connection, ids[Status.SENDING])
    assert retried is not None
    assert sending is not None
    assert retried.due_at == NOW
    assert retried.attempts == 0  # the full EMAIL_MAX_ATTEMPTS allowance again
    assert retried.updated_at == NOW
    assert sending.attempts == 3  # untouched
    assert sending.due_at == NOW + DAY

    # Due now, so a worker claims them at once (the queued one is due tomorrow).
    with engine.begin() as connection:
        claimed = lease_queries.claim_due(
            connection, now=NOW, limit=10, lease_token="w", lease_until=NOW + 60
        )
    assert {m.id for m in claimed} == {
        ids[s] for s in (Status.FAILED, Status.DEFERRED, Status.CANCELLED)
    }


def test_retry_by_ids_and_filters(outbox: Outbox, engine: Engine) -> None:
    failed = [enqueue(outbox, f"f{i}@example.com", stream="bulk") for i in range(3)]
    sent = enqueue(outbox, "s@example.com", stream="bulk")
    set_rows(engine, failed, status=Status.FAILED.value)
    set_rows(engine, [sent], status=Status.SENT.value)
    with engine.begin() as connection:
        # A sent id among the given ones is left alone and not counted.
        assert operations.retry(connection, now=NOW, ids=[failed[0], sent]) == 1
        assert operations.retry(connection, now=NOW, recipient="f1@") == 1
        assert operations.retry(connection, now=NOW, stream="transactional") == 0
        assert operations.retry(connection, now=NOW, stream="bulk", status=Status.FAILED) == 1
        assert operations.retry(connection, now=NOW, ids=[]) == 0
    assert statuses(engine) == {
        failed[0]: Status.QUEUED,
        failed[1]: Status.QUEUED,
        failed[2]: Status.QUEUED,
        sent: Status.SENT,
    }


def test_cancel_by_id_leaves_a_sending_message_with_its_worker(
    outbox: Outbox, engine: Engine
) -> None:
    ids = one_of_each(outbox)
    with engine.begin() as connection:
        assert operations.cancel(connection, now=NOW, ids=[ids[Status.SENDING]]) == 0
    assert statuses(engine)[ids[Status.SENDING]] is Status.SENDING


def test_cancel_by_filter(outbox: Outbox, engine: Engine) -> None:
    bulk = [enqueue(outbox, f"b{i}@example.com", stream="bulk") for i in range(3)]
    transactional = enqueue(outbox, "t@example.com")
    with engine.begin() as connection:
        assert operations.cancel(connection, now=NOW, stream="bulk") == 3
    after = statuses(engine)
    assert all(after[i] is Status.CANCELLED for i in bulk)
    assert after[transactional] is Status.QUEUED


@pytest.mark.parametrize("change", [operations.retry, operations.cancel])
def test_a_state_change_refuses_to_select_everything_implicitly(
    outbox: Outbox, engine: Engine, change: Any
) -> None:
    enqueue(outbox, "ada@example.com")
    with engine.begin() as connection, pytest.raises(NothingSelectedError):
        change(connection, now=NOW)
    assert set(statuses(engine).values()) == {Status.QUEUED}


# -- purge -------------------------------------------------------------------------------


def count_attempts(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(attempts)).scalar() or 0)


def test_purge_deletes_only_old_final_messages_with_their_attempts(
    outbox: Outbox, engine: Engine
) -> None:
    ids = one_of_each(outbox)
    for message_pk in ids.values():
        log_attempts(engine, message_pk, 2)
    recent_failure = enqueue(outbox, "recent@example.com")
    # Created long ago, but failed only an hour ago (after a retry): not purged yet.
    set_rows(
        engine,
        [recent_failure],
        status=Status.FAILED.value,
        created_at=NOW - 30 * DAY,
        updated_at=NOW - 3600,
    )
    log_attempts(engine, recent_failure, 1)

    cutoff = NOW - 7 * DAY
    with engine.connect() as connection:
        assert operations.count_purgeable(connection, older_than=cutoff) == len(FINAL)
        preview = operations.purgeable(connection, older_than=cutoff)
    assert {row.id for row in preview} == {ids[s] for s in FINAL}
    assert count_attempts(engine) == 2 * len(Status) + 1  # a dry run deletes nothing

    with engine.begin() as connection:
        assert operations.purge(connection, older_than=cutoff) == len(FINAL)
    remaining = statuses(engine)
    assert set(remaining) == {
        ids[s] for s in (Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.DEFERRED)
    } | {recent_failure}
    # The purged messages' send log went with them (ON DELETE CASCADE).
    assert count_attempts(engine) == 4 * 2 + 1
    with engine.connect() as connection:
        assert operations.attempts_for(connection, ids[Status.SENT]) == []

    # Even with a cut-off in the future, live messages are never deleted.
    with engine.begin() as connection:
        assert operations.purge(connection, older_than=NOW + DAY) == 1
    assert set(statuses(engine).values()) == {
        Status.QUEUED,
        Status.SCHEDULED,
        Status.SENDING,
        Status.DEFERRED,
    }


def test_purge_by_status_and_in_batches(outbox: Outbox, engine: Engine) -> None:
    sent = [enqueue(outbox, f"s{i}@example.com") for i in range(5)]
    failed = enqueue(outbox, "f@example.com")
    set_rows(engine, sent, status=Status.SENT.value, updated_at=NOW - DAY)
    set_rows(engine, [failed], status=Status.FAILED.value, updated_at=NOW - DAY)
    with engine.begin() as connection:
        assert operations.count_purgeable(connection, older_than=NOW, statuses=[Status.SENT]) == 5
        assert operations.purge(connection, older_than=NOW, statuses=[Status.SENT], limit=2) == 2
        assert operations.purge(connection, older_than=NOW, statuses=[Status.SENT], limit=2) == 2
        assert operations.purge(connection, older_than=NOW, statuses=[Status.SENT], limit=2) == 1
        assert operations.purge(connection, older_than=NOW, statuses=[Status.SENT], limit=2) == 0
        assert operations.purge(connection, older_than=NOW, statuses=[]) == 0
    assert statuses(engine) == {failed: Status.FAILED}


@pytest.mark.parametrize("live", [Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.DEFERRED])
def test_purge_refuses_live_statuses(outbox: Outbox, engine: Engine, live: Status) -> None:
    message_pk = enqueue(outbox, "ada@example.com")
    set_rows(engine, [message_pk], status=live.value, updated_at=NOW - 30 * DAY)
    with engine.begin() as connection, pytest.raises(ValueError, match=live.value):
        operations.purge(connection, older_than=NOW, statuses=[Status.SENT, live])
    assert statuses(engine) == {message_pk: live}

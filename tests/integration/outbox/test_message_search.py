"""The admin's message search on a real SQLite file and a real PostgreSQL: each filter,
filters combined, keyset pages that return every row once in order, and cursors that were
tampered with refused by name."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, update

from mailroom.errors import InvalidCursorError
from mailroom.message import Message
from mailroom.outbox import message_search
from mailroom.outbox.message_search import (
    FoundMessage,
    MessageSearch,
    encode_cursor,
    search_messages,
    search_plan,
)
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status

DAY = 86400.0
BASE = 1_800_000_000.0


@dataclass(frozen=True)
class Stored:
    pk: int
    to: tuple[str, ...]
    subject: str
    status: Status
    stream: str
    kind: str | None
    created_at: float


@pytest.fixture
def stored(outbox: Outbox) -> list[Stored]:
    """Thirty messages of known fields, a day apart; two share a creation time."""
    made = []
    for i in range(30):
        to = (f"user{i % 4}@Example.com",) + (("team@example.com",) if i % 5 == 0 else ())
        kind = ("invoice", "comment", None)[i % 3]
        subject = f"{'Invoice' if kind == 'invoice' else 'Note'} 100%_{i}"
        stream = ("transactional", "bulk")[i % 2]
        metadata = {"notification_type": kind} if kind else {"order": i}
        pk = outbox.send(
            Message(to=list(to), subject=subject, text="hi", metadata=metadata), stream=stream
        )
        status = (Status.SENT, Status.FAILED, Status.QUEUED)[i % 3 if i % 7 else 1]
        created_at = BASE + (i if i != 11 else 10) * DAY  # 10 and 11: the same time
        with outbox.engine.begin() as connection:
            connection.execute(
                update(messages)
                .where(messages.c.id == pk)
                .values(status=status.value, created_at=created_at)
            )
        made.append(Stored(pk, to, subject, status, stream, kind, created_at))
    return made


def newest_first(rows: list[Stored]) -> list[int]:
    return [r.pk for r in sorted(rows, key=lambda r: (r.created_at, r.pk), reverse=True)]


def every_page(engine: Engine, search: MessageSearch, limit: int) -> Iterator[FoundMessage]:
    cursor = None
    while True:
        with engine.connect() as connection:
            page = search_messages(connection, search, limit=limit, cursor=cursor)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def found(outbox: Outbox, search: MessageSearch, limit: int = 7) -> list[int]:
    return [row.id for row in every_page(outbox.engine, search, limit)]


def test_no_filter_lists_every_message_newest_first(outbox: Outbox, stored: list[Stored]) -> None:
    assert found(outbox, MessageSearch(), limit=100) == newest_first(stored)


@pytest.mark.parametrize("limit", [1, 2, 7, 29, 30, 31])
def test_pages_return_every_row_once_in_order(
    outbox: Outbox, stored: list[Stored], limit: int
) -> None:
    # 10 and 11 share a creation time: the id breaks the tie, across a page boundary too.
    assert found(outbox, MessageSearch(), limit=limit) == newest_first(stored)


def test_each_filter(outbox: Outbox, stored: list[Stored]) -> None:
    cases: dict[MessageSearch, Callable[[Stored], bool]] = {
        MessageSearch(status=Status.FAILED): lambda r: r.status is Status.FAILED,
        MessageSearch(stream="bulk"): lambda r: r.stream == "bulk",
        MessageSearch(notification_type="invoice"): lambda r: r.kind == "invoice",
        MessageSearch(recipient=" USER1@example.COM "): lambda r: "user1@Example.com" in r.to,
        MessageSearch(recipient="team@example.com"): lambda r: "team@example.com" in r.to,
        MessageSearch(subject="invoice"): lambda r: "Invoice" in r.subject,
        # LIKE's wildcards are matched as themselves.
        MessageSearch(subject="100%_2"): lambda r: "100%_2" in r.subject,
        MessageSearch(created_from=BASE + 5 * DAY, created_before=BASE + 9 * DAY): (
            lambda r: BASE + 5 * DAY <= r.created_at < BASE + 9 * DAY
        ),
    }
    for search, wanted in cases.items():
        expected = newest_first([r for r in stored if wanted(r)])
        assert expected, search
        assert found(outbox, search) == expected, search


def test_a_substring_of_an_address_finds_nothing(outbox: Outbox, stored: list[Stored]) -> None:
    # Exact addresses only: that is what the events' index can answer on a million rows.
    assert found(outbox, MessageSearch(recipient="user1")) == []


def test_filters_combined(outbox: Outbox, stored: list[Stored]) -> None:
    search = MessageSearch(
        status=Status.SENT,
        stream="transactional",
        notification_type="invoice",
        recipient="user0@example.com",
        subject="invoice",
        created_from=BASE,
    )
    expected = newest_first(
        [
            r
            for r in stored
            if r.status is Status.SENT
            and r.stream == "transactional"
            and r.kind == "invoice"
            and "user0@Example.com" in r.to
        ]
    )
    assert expected
    assert found(outbox, search, limit=1) == expected


def test_a_row_carries_the_list_fields(outbox: Outbox, stored: list[Stored]) -> None:
    first = stored[0]
    with outbox.engine.connect() as connection:
        page = search_messages(connection, MessageSearch(recipient="team@example.com"), limit=50)
    row = next(r for r in page.rows if r.id == first.pk)
    assert (row.subject, row.status, row.stream) == (first.subject, first.status, first.stream)
    assert row.recipients == tuple(address.lower() for address in first.to)  # domain lowered
    assert row.notification_type == "invoice"
    assert row.created_at == first.created_at
    assert page.next_cursor is None


def test_a_narrow_search_pages_through_scan_windows(
    outbox: Outbox, stored: list[Stored], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A subject (or two equalities) reads at most SCAN_WINDOW messages a page: a page may
    # come back short, with a cursor to search on; every match still comes, once, in order.
    monkeypatch.setattr(message_search, "SCAN_WINDOW", 4)
    search = MessageSearch(subject="invoice", stream="transactional")
    expected = newest_first(
        [r for r in stored if "Invoice" in r.subject and r.stream == "transactional"]
    )
    with outbox.engine.connect() as connection:
        page = search_messages(connection, search, limit=50)
    assert page.searched_back_to is not None
    assert page.next_cursor is not None
    assert all(row.created_at >= page.searched_back_to for row in page.rows)
    assert found(outbox, search, limit=50) == expected


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "",
        base64.urlsafe_b64encode(b"[1.5]").decode(),
        base64.urlsafe_b64encode(b'["x", 1]').decode(),
        base64.urlsafe_b64encode(b"[1.5, 2.5]").decode(),
        base64.urlsafe_b64encode(b"[NaN, 2]").decode(),
        base64.urlsafe_b64encode(b"[true, 2]").decode(),
        base64.urlsafe_b64encode(b"[1e9, 9223372036854775808]").decode(),  # past BIGINT
        base64.urlsafe_b64encode(b"[1e9, -1]").decode(),
        base64.urlsafe_b64encode(b"[1e300, 2]").decode(),
        base64.urlsafe_b64encode(b"[-1.5, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        encode_cursor(1.5, 2)[:-3],
    ],
)
def test_a_tampered_cursor_is_refused_by_name(outbox: Outbox, cursor: str) -> None:
    with outbox.engine.connect() as connection, pytest.raises(InvalidCursorError):
        search_messages(connection, MessageSearch(), cursor=cursor)


def test_plans_use_the_search_indexes(outbox: Outbox, stored: list[Stored]) -> None:
    expected = {
        MessageSearch(): "ix_mailroom_messages_created_at_id",
        MessageSearch(status=Status.SENT): "ix_mailroom_messages_status_created_at_id",
        MessageSearch(stream="bulk"): "ix_mailroom_messages_stream_created_at_id",
        MessageSearch(notification_type="x"): "ix_mailroom_messages_notification_type",
        MessageSearch(recipient="a@example.com"): "ix_mailroom_events_recipient_lower",
    }
    with outbox.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Thirty rows: PostgreSQL's planner rightly reads them all; the bench shows its
            # plans on a million.
            connection.exec_driver_sql("SET enable_seqscan = off")
            connection.exec_driver_sql("SET enable_bitmapscan = off")
        for search, index in expected.items():
            plan = " ".join(search_plan(connection, search))
            assert index in plan, (search, plan)

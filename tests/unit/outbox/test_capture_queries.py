"""The captured-mail queries on a real SQLite file and a real PostgreSQL: the bound (oldest
dropped first), keyset paging newest first, search, and deletes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from mailroom.outbox import database
from mailroom.outbox.capture_queries import (
    CapturedMessage,
    CapturedSummary,
    delete_all_captured,
    delete_captured,
    get_captured,
    list_captured,
    store_captured,
)
from mailroom.outbox.database import create_outbox_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_outbox_engine(database_url)
    database.upgrade(made)
    yield made
    made.dispose()


def store(
    engine: Engine,
    n: int,
    *,
    keep: int = 1000,
    subject: str | None = None,
    mail_from: str = "app@example.com",
    recipients: tuple[str, ...] | None = None,
) -> int:
    with engine.begin() as connection:
        return store_captured(
            connection,
            message_pk=None,
            message_id=f"<{n}@example.com>",
            mail_from=mail_from,
            recipients=recipients or (f"user{n}@example.com",),
            subject=subject if subject is not None else f"Note {n}",
            data=f"Subject: Note {n}\r\n\r\nbody {n}\r\n".encode(),
            now=1000.0 + n,
            keep=keep,
        )


def listed(
    engine: Engine,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    search: str | None = None,
) -> list[CapturedSummary]:
    with engine.connect() as connection:
        return list_captured(connection, before=before, after=after, limit=limit, search=search)


def test_stored_and_read_back_exactly(engine: Engine) -> None:
    data = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n\x00\xff binary body\r\n"
    with engine.begin() as connection:
        captured_id = store_captured(
            connection,
            message_pk=None,
            message_id="<a@example.com>",
            mail_from="app@example.com",
            recipients=["ada@example.com", "bob@example.com"],
            subject="Grüße",
            data=data,
            now=1234.5,
            keep=10,
        )
    with engine.connect() as connection:
        found = get_captured(connection, captured_id)
        assert get_captured(connection, captured_id + 1) is None
    assert found == CapturedMessage(
        id=captured_id,
        message_pk=None,
        message_id="<a@example.com>",
        mail_from="app@example.com",
        recipients=("ada@example.com", "bob@example.com"),
        subject="Grüße",
        captured_at=1234.5,
        size=len(data),
        data=data,
    )


def test_the_bound_drops_the_oldest_first(engine: Engine) -> None:
    ids = [store(engine, n, keep=3) for n in range(7)]
    assert [c.id for c in listed(engine)] == ids[:-4:-1]  # the newest three, newest first
    assert [c.subject for c in listed(engine)] == ["Note 6", "Note 5", "Note 4"]
    # A smaller bound later trims at the next store.
    newest = store(engine, 7, keep=1)
    assert [c.id for c in listed(engine)] == [newest]


def test_keyset_pages_newest_first_without_gaps_or_repeats(engine: Engine) -> None:
    ids = [store(engine, n) for n in range(7)]
    pages: list[list[int]] = []
    before: int | None = None
    while page := listed(engine, before=before, limit=3):
        pages.append([c.id for c in page])
        before = page[-1].id
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    # New mail captured meanwhile does not shift a page already being read.
    store(engine, 7)
    assert [c.id for c in listed(engine, before=ids[4], limit=2)] == [ids[3], ids[2]]


def test_after_lists_only_what_arrived_since_newest_first(engine: Engine) -> None:
    ids = [store(engine, n, subject=f"{'match' if n % 2 else 'other'} {n}") for n in range(6)]
    assert [c.id for c in listed(engine, after=ids[2])] == [ids[5], ids[4], ids[3]]
    assert [c.id for c in listed(engine, after=ids[2], search="match")] == [ids[5], ids[3]]
    assert listed(engine, after=ids[5]) == []


def test_summaries_carry_the_size_not_the_bytes(engine: Engine) -> None:
    store(engine, 1)
    (summary,) = listed(engine)
    assert type(summary) is CapturedSummary
    assert summary.size == len(b"Subject: Note 1\r\n\r\nbody 1\r\n")
    assert summary.recipients == ("user1@example.com",)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("invoice", ["Your INVOICE"]),
        ("BILLING@", ["Your INVOICE", "Receipt"]),  # the sender, ignoring case
        ("carol", ["Receipt"]),  # a recipient
        ("100%", ["100% off"]),  # a LIKE wildcard is a plain character
        ("a_b", ["a_b test"]),
        ("x%y", []),
        ("nothing like it", []),
    ],
)
def test_search_matches_subject_sender_or_recipients(
    engine: Engine, search: str, expected: list[str]
) -> None:
    store(engine, 1, subject="Your INVOICE", mail_from="Billing@Example.com")
    store(
        engine,
        2,
        subject="Receipt",
        mail_from="billing@example.com",
        recipients=("ada@example.com", "Carol@example.com"),
    )
    store(engine, 3, subject="100% off")
    store(engine, 4, subject="a_b test")
    store(engine, 5, subject="axb test")  # would match "a_b" if "_" were a wildcard
    store(engine, 6, subject="x and y")  # would match "x%y" if "%" were a wildcard
    found = [c.subject for c in listed(engine, search=search)]
    assert sorted(found) == sorted(expected)


def test_search_and_paging_together(engine: Engine) -> None:
    ids = [store(engine, n, subject=f"{'match' if n % 2 else 'other'} {n}") for n in range(8)]
    first = listed(engine, search="match", limit=2)
    assert [c.id for c in first] == [ids[7], ids[5]]
    second = listed(engine, search="match", limit=2, before=first[-1].id)
    assert [c.id for c in second] == [ids[3], ids[1]]


def test_delete_one_and_all(engine: Engine) -> None:
    ids = [store(engine, n) for n in range(3)]
    with engine.begin() as connection:
        assert delete_captured(connection, ids[1]) is True
        assert delete_captured(connection, ids[1]) is False
    assert [c.id for c in listed(engine)] == [ids[2], ids[0]]
    with engine.begin() as connection:
        assert delete_all_captured(connection) == 2
        assert delete_all_captured(connection) == 0
    assert listed(engine) == []

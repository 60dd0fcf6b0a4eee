"""The batched hit writer on a real database: resolution, labels, privacy, failures."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text, update

from mailroom.config import TrackingIP, load_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.event_queries import EventRecord, events_of
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType, HitLabel
from mailroom.tracking.labels import HitKind
from mailroom.tracking.recorder import USER_AGENT_MAX, EventRecorder, Hit
from mailroom.tracking.tokens import HitClaim

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    box = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    database.upgrade(box.engine)
    yield box
    box.dispose()


def sent_message(outbox: Outbox, message_id: str, sent_at: float) -> int:
    pk = outbox.send_each(
        [Message(to=["ada@example.com"], subject="s", text="t", message_id=message_id)],
        tracked_links=[["https://a.example/"]],
    )[0]
    assert isinstance(pk, int)
    with outbox.engine.begin() as connection:
        connection.execute(update(messages).where(messages.c.id == pk).values(sent_at=sent_at))
    return pk


def hits_of(connection: Connection, pk: int) -> list[EventRecord]:
    """The message's opens and clicks (the outbox records its own ``queued`` beside them)."""
    return [e for e in events_of(connection, pk) if e.type in (EventType.OPENED, EventType.CLICKED)]


def hit(kind: HitKind, message_id: str, at: float, **overrides: Any) -> Hit:
    values: dict[str, Any] = {
        "kind": kind,
        "claim": HitClaim(message_id, "ada@example.com", 0 if kind is HitKind.CLICK else None),
        "at": at,
        "method": "GET",
        "user_agent": FIREFOX,
        "ip": "203.0.113.77",
    }
    return Hit(**{**values, **overrides})


def test_hits_are_resolved_labelled_and_written_in_one_batch(outbox: Outbox) -> None:
    now = time.time()
    pk = sent_message(outbox, "<one.1@acme.example>", now - 3600)
    fresh = sent_message(outbox, "<two.2@acme.example>", now - 2)
    recorder = EventRecorder(outbox.engine, TrackingIP.TRUNCATE)
    recorder.add(hit(HitKind.OPEN, "<one.1@acme.example>", now))
    recorder.add(hit(HitKind.CLICK, "<one.1@acme.example>", now, method="HEAD"))
    recorder.add(hit(HitKind.CLICK, "<two.2@acme.example>", now))  # 2 s after delivery
    recorder.add(hit(HitKind.OPEN, "<gone.3@acme.example>", now, user_agent="Mozilla/5.0"))
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(outbox.engine, "before_cursor_execute", count)
    try:
        assert recorder.flush() == 4
    finally:
        event.remove(outbox.engine, "before_cursor_execute", count)
    assert len(selects) == 1  # one query resolves the whole batch's Message-IDs
    with outbox.engine.connect() as connection:
        first = hits_of(connection, pk)
        second = hits_of(connection, fresh)
        orphans = connection.execute(
            text("SELECT type, label, detail FROM mailroom_events WHERE message_pk IS NULL")
        ).all()
    assert [(e.type, e.label, e.link_index) for e in first] == [
        (EventType.OPENED, HitLabel.HUMAN, None),
        (EventType.CLICKED, HitLabel.SCANNER, 0),
    ]
    detail = first[0].detail or {}
    assert detail["ip"] == "203.0.113.0"
    assert detail["method"] == "GET"
    assert detail["user_agent"] == FIREFOX
    assert detail["seconds_since_delivery"] == pytest.approx(3600, abs=1)
    assert [(e.type, e.label) for e in second] == [(EventType.CLICKED, HitLabel.SCANNER)]
    assert len(orphans) == 1  # a purged message's hit is kept, with its Message-ID
    assert orphans[0].label == HitLabel.PREFETCH


def test_the_writer_thread_flushes_within_its_interval_and_on_close(outbox: Outbox) -> None:
    pk = sent_message(outbox, "<three.3@acme.example>", time.time() - 60)
    recorder = EventRecorder(outbox.engine, TrackingIP.NONE, interval=0.1)
    recorder.start()
    try:
        recorder.add(hit(HitKind.OPEN, "<three.3@acme.example>", time.time()))
        deadline = time.monotonic() + 5
        while recorder.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert recorder.pending() == 0  # written by the thread, within its interval
    finally:
        recorder.close()
    slow = EventRecorder(outbox.engine, TrackingIP.NONE, interval=3600)
    slow.start()
    slow.add(hit(HitKind.OPEN, "<three.3@acme.example>", time.time()))
    slow.close()  # an hour before its next write: close writes it, it is not lost
    with outbox.engine.connect() as connection:
        found = hits_of(connection, pk)
    assert len(found) == 2
    assert all((e.detail or {})["ip"] is None for e in found)  # TRACKING_IP=none


def test_a_database_that_fails_keeps_the_hits_until_it_answers(tmp_path: Path) -> None:
    engine: Engine = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    recorder = EventRecorder(engine, TrackingIP.TRUNCATE, max_pending=3)
    for n in range(5):
        recorder.add(hit(HitKind.OPEN, f"<m.{n}@acme.example>", time.time()))
    assert recorder.flush() == 0  # no tables: refused, logged, not raised
    assert recorder.pending() == 3  # bounded: the oldest two were dropped
    database.upgrade(engine)
    assert recorder.flush() == 3
    assert recorder.pending() == 0
    engine.dispose()


def test_a_huge_user_agent_is_cut_as_the_hit_is_taken(outbox: Outbox) -> None:
    pk = sent_message(outbox, "<ua.1@acme.example>", time.time() - 60)
    recorder = EventRecorder(outbox.engine, TrackingIP.TRUNCATE)
    recorder.add(
        hit(HitKind.OPEN, "<ua.1@acme.example>", time.time(), user_agent="Moz" * 2_000_000)
    )
    assert recorder.pending_bytes() < USER_AGENT_MAX + 1024  # the buffer never held 6 MB
    started = time.perf_counter()
    assert recorder.flush() == 1
    assert time.perf_counter() - started < 0.5
    with outbox.engine.connect() as connection:
        (found,) = hits_of(connection, pk)
    assert (found.detail or {})["user_agent"] == ("Moz" * 200)[:USER_AGENT_MAX]


def test_the_write_transaction_only_inserts(tmp_path: Path) -> None:
    # SQLite's: its write transaction holds the one write lock of the database.
    outbox = Outbox(load_settings(environ={"DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}"}))
    database.upgrade(outbox.engine)
    pk = sent_message(outbox, "<tx.1@acme.example>", time.time() - 60)
    writes: list[str] = []
    event.listen(outbox.engine, "before_cursor_execute", lambda *args: writes.append(str(args[2])))
    reader = create_engine(outbox.engine.url)
    recorder = EventRecorder(outbox.engine, TrackingIP.TRUNCATE, read_engine=reader)
    recorder.add(hit(HitKind.OPEN, "<tx.1@acme.example>", time.time()))
    assert recorder.flush() == 1
    reader.dispose()
    # The lookup ran on the read engine, before the writer's transaction began.
    statements = [sql.lstrip().upper() for sql in writes]
    assert statements[0] == "BEGIN IMMEDIATE"
    assert len(statements) > 1
    assert all(sql.startswith("INSERT") for sql in statements[1:]), writes
    with outbox.engine.connect() as connection:
        assert len(hits_of(connection, pk)) == 1
    outbox.dispose()


def test_the_buffer_is_bounded_in_bytes_as_well_as_in_hits() -> None:
    recorder = EventRecorder(
        create_engine("sqlite://"), TrackingIP.TRUNCATE, max_pending_bytes=100_000
    )
    for n in range(1_000):
        recorder.add(hit(HitKind.OPEN, f"<m.{n}@acme.example>", time.time(), user_agent="U" * 400))
    assert recorder.pending_bytes() <= 100_000
    assert 100 < recorder.pending() < 1_000  # the oldest were dropped, the newest kept
    assert recorder.dropped == 1_000 - recorder.pending()


def test_close_waits_a_bounded_time_for_a_database_that_does_not_answer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    database.upgrade(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer that never lets go
    recorder = EventRecorder(engine, TrackingIP.TRUNCATE, interval=3600)
    recorder.start()
    recorder.add(hit(HitKind.OPEN, "<locked.1@acme.example>", time.time()))
    try:
        started = time.monotonic()
        recorder.close(timeout=0.5)
        assert time.monotonic() - started < 2.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()

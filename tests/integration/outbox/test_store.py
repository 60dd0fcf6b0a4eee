"""The outbox on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from mailroom.config import Settings, load_settings
from mailroom.errors import InvalidAddressError, MessageError
from mailroom.message import Message
from mailroom.outbox import database, queries
from mailroom.outbox.database import SchemaOutdatedError, create_outbox_engine
from mailroom.outbox.schema import Status, messages, metadata
from mailroom.outbox.store import Outbox


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(environ={"DATABASE_URL": database_url})


@pytest.fixture
def outbox(settings: Settings) -> Iterator[Outbox]:
    box = Outbox(settings)
    database.upgrade(box.engine)
    yield box
    box.dispose()


def note(i: int = 0, **kw: object) -> Message:
    return Message(to=[f"user{i}@example.com"], subject=f"Note {i}", text="hello", **kw)  # type: ignore[arg-type]


def test_schema_from_migrations_equals_the_models(database_url: str) -> None:
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": database.VERSION_TABLE}
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_refuses_an_unmigrated_database(settings: Settings) -> None:
    engine = create_outbox_engine(settings.DATABASE_URL)
    with pytest.raises(SchemaOutdatedError, match="mailroom db upgrade"):
        database.check_schema(engine)
    engine.dispose()


def test_send_commits_before_returning_the_id(outbox: Outbox, settings: Settings) -> None:
    message_pk = outbox.send(note(1))
    # A separate engine, as another process would: the row is already committed.
    other = create_outbox_engine(settings.DATABASE_URL)
    with other.connect() as connection:
        row = connection.execute(select(messages).where(messages.c.id == message_pk)).one()
    other.dispose()
    assert row.status == Status.QUEUED
    assert row.recipients == ["user1@example.com"]
    assert row.stream == "transactional"
    assert row.attempts == 0
    assert b"Subject: Note 1" in row.data


def test_send_with_fields_instead_of_a_message(outbox: Outbox) -> None:
    message_pk = outbox.send(to=["ada@example.com"], subject="Hi", text="x")
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.recipients == ("ada@example.com",)
    assert stored.subject == "Hi"


def test_send_many_is_one_transaction(outbox: Outbox) -> None:
    batch = [note(i) for i in range(10)]
    batch.insert(5, Message(to=["not an address"], subject="bad", text="x"))
    with pytest.raises(InvalidAddressError, match="message 5"):
        outbox.send_many(batch)
    assert outbox.counts()[Status.QUEUED] == 0

    ids = outbox.send_many([note(i) for i in range(500)], stream="bulk")
    assert len(ids) == len(set(ids)) == 500
    assert ids == sorted(ids)
    assert outbox.counts()[Status.QUEUED] == 500


def test_send_at_schedules(outbox: Outbox) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    message_pk = outbox.send(note(), send_at=later)
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.status is Status.SCHEDULED
    assert stored.due_at == pytest.approx(later.timestamp())
    with outbox.engine.begin() as connection:
        claimed = queries.claim_due(
            connection, now=later.timestamp() - 1, limit=10, lease_token="t", lease_until=0
        )
    assert claimed == []
    with pytest.raises(MessageError, match="timezone-aware"):
        outbox.send(note(), send_at=datetime(2030, 1, 1))


def test_idempotency_key_returns_the_same_id(outbox: Outbox) -> None:
    first = outbox.send(note(1), idempotency_key="order-42-confirmation")
    again = outbox.send(note(2), idempotency_key="order-42-confirmation")
    other = outbox.send(note(3), idempotency_key="order-43-confirmation")
    assert first == again != other
    assert outbox.counts()[Status.QUEUED] == 2
    keys = ["a", None, "order-42-confirmation", "b"]
    ids = outbox.send_many([note(i) for i in range(4)], idempotency_keys=keys)
    assert ids[2] == first
    assert len(set(ids)) == 4


def test_concurrent_callers_with_one_idempotency_key_make_one_message(
    settings: Settings, outbox: Outbox
) -> None:
    callers = 8
    barrier = threading.Barrier(callers)
    results: list[int] = []
    errors: list[BaseException] = []

    def call(i: int) -> None:
        box = Outbox(settings)  # each caller its own engine and connection, like a process
        try:
            barrier.wait()
            results.append(box.send(note(i), idempotency_key="signup-ada"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            box.dispose()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == callers
    assert len(set(results)) == 1
    assert outbox.counts()[Status.QUEUED] == 1


def test_claim_orders_transactional_before_bulk_and_leases(outbox: Outbox) -> None:
    bulk = outbox.send_many([note(i) for i in range(5)], stream="bulk")
    urgent = outbox.send(note(99))
    with outbox.engine.begin() as connection:
        claimed = queries.claim_due(
            connection, now=9e9, limit=3, lease_token="w1", lease_until=9e9 + 60
        )
    assert [m.id for m in claimed] == [urgent, bulk[0], bulk[1]]
    stored = outbox.get(urgent)
    assert stored is not None
    assert stored.status is Status.SENDING
    # A second claimer does not get the leased rows.
    with outbox.engine.begin() as connection:
        second = queries.claim_due(
            connection, now=9e9, limit=10, lease_token="w2", lease_until=9e9 + 60
        )
    assert [m.id for m in second] == bulk[2:]


def test_expired_leases_go_back_to_the_queue(outbox: Outbox) -> None:
    message_pk = outbox.send(note())
    with outbox.engine.begin() as connection:
        queries.claim_due(connection, now=100.0e9, limit=1, lease_token="dead", lease_until=1.0)
        recovered = queries.recover_expired_leases(connection, now=2.0)
    assert [pk for pk, _ in recovered] == [message_pk]
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.status is Status.QUEUED


def test_a_late_worker_cannot_overwrite_a_reclaimed_message(outbox: Outbox) -> None:
    message_pk = outbox.send(note())
    with outbox.engine.begin() as connection:
        queries.claim_due(connection, now=9e9, limit=1, lease_token="old", lease_until=1.0)
        queries.recover_expired_leases(connection, now=2.0)
        queries.claim_due(connection, now=9e9, limit=1, lease_token="new", lease_until=9e9)
        done = queries.Completion(id=message_pk, status=Status.SENT, due_at=3.0, sent_at=3.0)
        assert queries.complete(connection, [done], "old", now=3.0) == 0
        assert queries.complete(connection, [done], "new", now=3.0) == 1
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.status is Status.SENT
    assert stored.attempts == 1


def test_send_many_ids_match_their_messages_across_insert_chunks(outbox: Outbox) -> None:
    """The ids come back in the order of the batch, also past one INSERT statement's rows,
    and between another caller's inserts."""
    outbox.send(note(-1))
    batch = [note(i, metadata={"n": i}) for i in range(450)]
    ids = outbox.send_many(batch)
    assert len(set(ids)) == 450
    with outbox.engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(messages.c.id, messages.c.recipients).where(messages.c.id.in_(ids))
            ).all()
        )
        extras = dict(
            connection.execute(
                select(messages.c.id, messages.c.extra).where(messages.c.id.in_(ids))
            ).all()
        )
    assert [stored[i] for i in ids] == [[f"user{n}@example.com"] for n in range(450)]
    assert [extras[i] for i in ids] == [{"n": n} for n in range(450)]
    assert outbox.send(note(1000)) > max(ids)


def test_message_bytes_are_stored_out_of_line_on_postgresql(database_url: str) -> None:
    """Migration 0004: updates of a message's state must not copy (or recompress) its bytes."""
    engine = create_outbox_engine(database_url)
    try:
        database.upgrade(engine)
        if engine.dialect.name != "postgresql":
            assert database.schema_revisions(engine)[0] == "0004"  # a no-op on SQLite
            return
        with engine.connect() as connection:
            storage = connection.exec_driver_sql(
                "SELECT attstorage FROM pg_attribute "
                "WHERE attrelid = 'mailroom_messages'::regclass AND attname = 'data'"
            ).scalar()
        assert storage == "e"  # EXTERNAL: out of line, uncompressed
    finally:
        engine.dispose()

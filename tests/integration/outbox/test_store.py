"""The outbox on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select, update

import mailroom
from mailroom.config import Settings, load_settings
from mailroom.errors import (
    IdempotencyConflictError,
    InvalidAddressError,
    MessageError,
    SchemaOutdatedError,
)
from mailroom.message import Attachment, Message
from mailroom.outbox import database, lease_queries, queries
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import attempts, messages, metadata
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import ConsentFacts, Status


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(environ={"DATABASE_URL": database_url})


_LEFT_OUT = object()


def insert_legacy_row(connection: Connection, pk: int, extra: Any = _LEFT_OUT) -> None:
    """A queued message row as a schema-0005 outbox held it; ``extra`` as given, if given
    (left out, the column is SQL NULL; a given None is stored by the JSON type as JSON null)."""
    connection.execute(
        messages.insert().values(
            id=pk,
            message_id=f"<{pk}@x>",
            stream="transactional",
            priority=0,
            status="queued",
            sender="a@x",
            recipients=["b@x"],
            subject="s",
            data=b"x",
            smtputf8=False,
            created_at=0,
            due_at=0,
            updated_at=0,
            attempts=0,
            **({} if extra is _LEFT_OUT else {"extra": extra}),
        )
    )


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
        claimed = lease_queries.claim_due(
            connection, now=later.timestamp() - 1, limit=10, lease_token="t", lease_until=0
        )
    assert claimed == []
    with pytest.raises(MessageError, match="timezone-aware"):
        outbox.send(note(), send_at=datetime(2030, 1, 1))


def test_idempotency_key_returns_the_same_id(outbox: Outbox) -> None:
    first = outbox.send(note(1), idempotency_key="order-42-confirmation")
    # A retry builds a new Date and Message-ID: the same request all the same.
    again = outbox.send(note(1), idempotency_key="order-42-confirmation")
    other = outbox.send(note(3), idempotency_key="order-43-confirmation")
    assert first == again != other
    assert outbox.counts()[Status.QUEUED] == 2
    keys = ["a", None, "order-42-confirmation", "b"]
    batch = [note(0), note(1), note(1), note(3)]
    ids = outbox.send_many(batch, idempotency_keys=keys)
    assert ids[2] == first
    assert len(set(ids)) == 4


def test_idempotency_key_with_different_content_is_refused(outbox: Outbox) -> None:
    first = outbox.send(note(1), idempotency_key="order-42-confirmation")
    with pytest.raises(IdempotencyConflictError) as caught:
        outbox.send(note(2), idempotency_key="order-42-confirmation")
    assert caught.value.field == "idempotency_key"
    assert caught.value.message_pk == first
    assert "already used for a different message" in str(caught.value)
    # Each kind of content counts: addresses, subject, bodies, headers, attachments, stream.
    changes: list[dict[str, object]] = [
        {"to": ["other@example.com"]},
        {"cc": ["cc@example.com"]},
        {"subject": "Note 1 (corrected)"},
        {"text": "hello!"},
        {"html": "<p>hello</p>"},
        {"headers": {"X-Order": "42"}},
        {"attachments": [Attachment("a.txt", b"x", "text/plain")]},
        {"from_email": "other@example.com"},
    ]
    for change in changes:
        with pytest.raises(IdempotencyConflictError):
            outbox.send(replace(note(1), **change), idempotency_key="order-42-confirmation")  # type: ignore[arg-type]
    with pytest.raises(IdempotencyConflictError):
        outbox.send(note(1), stream="bulk", idempotency_key="order-42-confirmation")
    # Not content: the caller's metadata and the send time.
    later = datetime.now(UTC) + timedelta(hours=1)
    same = replace(note(1), metadata={"attempt": 2})
    assert outbox.send(same, send_at=later, idempotency_key="order-42-confirmation") == first
    # A conflict in a batch commits nothing of it.
    with pytest.raises(IdempotencyConflictError):
        outbox.send_many([note(7), note(8)], idempotency_keys=["fresh", "order-42-confirmation"])
    assert outbox.counts()[Status.QUEUED] == 1
    # Two uses of one key in one batch are compared too.
    with pytest.raises(IdempotencyConflictError):
        outbox.send_many([note(7), note(8)], idempotency_keys=["twice", "twice"])
    assert outbox.send_many([note(7), note(7)], idempotency_keys=["twice", "twice"])[1] > first


def test_rows_from_before_fingerprints_match_by_key_alone(outbox: Outbox) -> None:
    first = outbox.send(note(1), idempotency_key="old")
    with outbox.engine.begin() as connection:
        connection.execute(messages.update().values(idempotency_fingerprint=None))
    assert outbox.send(note(2), idempotency_key="old") == first


def test_send_each_commits_the_valid_and_returns_errors(outbox: Outbox) -> None:
    taken = outbox.send(note(1), idempotency_key="k1")
    results = outbox.send_each(
        [note(2), Message(to=["not an address"], text="x"), note(3), note(4)],
        idempotency_keys=[None, None, "k1", "k4"],
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], InvalidAddressError)
    assert isinstance(results[2], IdempotencyConflictError)
    assert results[2].message_pk == taken
    assert isinstance(results[3], int)
    assert outbox.counts()[Status.QUEUED] == 3


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
            results.append(box.send(note(1), idempotency_key="signup-ada"))
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
        claimed = lease_queries.claim_due(
            connection, now=9e9, limit=3, lease_token="w1", lease_until=9e9 + 60
        )
    assert [m.id for m in claimed] == [urgent, bulk[0], bulk[1]]
    stored = outbox.get(urgent)
    assert stored is not None
    assert stored.status is Status.SENDING
    # A second claimer does not get the leased rows.
    with outbox.engine.begin() as connection:
        second = lease_queries.claim_due(
            connection, now=9e9, limit=10, lease_token="w2", lease_until=9e9 + 60
        )
    assert [m.id for m in second] == bulk[2:]


@pytest.mark.parametrize("stored", [[""], [], 5, "all", ["all", 3], {"all": True}])
def test_a_claim_reads_unreadable_consent_facts_as_a_plain_send(
    outbox: Outbox, stored: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored value that makes no ConsentFacts does not fail the claim: the message is
    claimed as one enqueued without consent facts, with a warning."""
    bad = outbox.send(note(1))
    good = outbox.send(note(2))
    with outbox.engine.begin() as connection:
        connection.execute(
            update(messages)
            .where(messages.c.id == bad)
            .values(consent_scopes=stored, consent_required=False)
        )
        connection.execute(
            update(messages)
            .where(messages.c.id == good)
            .values(consent_scopes=["all", "type:t"], consent_required=False)
        )
    with caplog.at_level(logging.WARNING), outbox.engine.begin() as connection:
        claimed = lease_queries.claim_due(
            connection, now=9e9, limit=10, lease_token="w1", lease_until=9e9 + 60
        )
    assert {m.id: m.consent for m in claimed} == {
        bad: None,
        good: ConsentFacts(("all", "type:t"), False),
    }
    assert f"message {bad}: unreadable consent facts" in caplog.text


def test_expired_leases_go_back_to_the_queue(outbox: Outbox) -> None:
    message_pk = outbox.send(note())
    with outbox.engine.begin() as connection:
        lease_queries.claim_due(
            connection, now=100.0e9, limit=1, lease_token="dead", lease_until=1.0
        )
        recovered = lease_queries.recover_expired_leases(connection, now=2.0)
    assert [pk for pk, _ in recovered] == [message_pk]
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.status is Status.QUEUED


def test_a_late_worker_cannot_overwrite_a_reclaimed_message(outbox: Outbox) -> None:
    message_pk = outbox.send(note())
    with outbox.engine.begin() as connection:
        lease_queries.claim_due(connection, now=9e9, limit=1, lease_token="old", lease_until=1.0)
        lease_queries.recover_expired_leases(connection, now=2.0)
        lease_queries.claim_due(connection, now=9e9, limit=1, lease_token="new", lease_until=9e9)
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
            current, head = database.schema_revisions(engine)
            assert current == head  # a no-op on SQLite
            return
        with engine.connect() as connection:
            storage = connection.exec_driver_sql(
                "SELECT attstorage FROM pg_attribute "
                "WHERE attrelid = 'mailroom_messages'::regclass AND attname = 'data'"
            ).scalar()
        assert storage == "e"  # EXTERNAL: out of line, uncompressed
    finally:
        engine.dispose()


def test_fingerprint_migration_keeps_keyed_rows_and_goes_both_ways(database_url: str) -> None:
    """Migration 0005 on a database with keyed messages: they keep their keys, match by key
    alone (no fingerprint), and the downgrade drops only the column."""
    engine = create_outbox_engine(database_url)
    settings = load_settings(environ={"DATABASE_URL": database_url})
    try:
        database.upgrade(engine, "0004")
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO mailroom_messages (message_id, stream, priority, status, sender, "
                "recipients, subject, data, smtputf8, idempotency_key, created_at, due_at, "
                "updated_at, attempts) VALUES ('<m@x>', 'transactional', 0, 'sent', 'a@x', "
                "'[\"b@x\"]', 's', X'00', false, 'old-key', 0, 0, 0, 1)"
                if engine.dialect.name == "sqlite"
                else "INSERT INTO mailroom_messages (message_id, stream, priority, status, "
                "sender, recipients, subject, data, smtputf8, idempotency_key, created_at, "
                "due_at, updated_at, attempts) VALUES ('<m@x>', 'transactional', 0, 'sent', "
                "'a@x', '[\"b@x\"]', 's', '\\x00', false, 'old-key', 0, 0, 0, 1)"
            )
        database.upgrade(engine)
        box = Outbox(settings, engine=engine)
        assert box.send(note(5), idempotency_key="old-key") == 1
        database.upgrade(engine)  # idempotent
        command.downgrade(database.alembic_config(engine), "0004")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM mailroom_messages").scalar()
        database.upgrade(engine)
    finally:
        engine.dispose()


def test_consent_migration_moves_the_metadata_keys_into_columns_and_back(
    database_url: str,
) -> None:
    """Migration 0006: the consent facts ``notify`` kept in a message's metadata move to
    their own columns with the meaning the worker gave them; the downgrade puts them back."""
    engine = create_outbox_engine(database_url)
    stored = {
        1: {
            "notification_type": "t",
            "mailroom_scopes": ["all", "type:t"],
            "mailroom_required": False,
        },
        2: {"order": 42},
        3: None,
        4: {"mailroom_required": False},  # scopes absent: "all"
        5: {"mailroom_scopes": []},  # required absent: not required; empty scopes: "all"
    }
    try:
        database.upgrade(engine, "0005")
        with engine.begin() as connection:
            for pk, extra in stored.items():
                insert_legacy_row(connection, pk)
                # Set apart: the model's JSON type would store a None as JSON null.
                if extra is not None:
                    connection.execute(
                        update(messages).where(messages.c.id == pk).values(extra=extra)
                    )
        database.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    messages.c.id,
                    messages.c.extra,
                    messages.c.consent_scopes,
                    messages.c.consent_required,
                ).order_by(messages.c.id)
            ).all()
        assert [tuple(row) for row in rows] == [
            (1, {"notification_type": "t"}, ["all", "type:t"], False),
            (2, {"order": 42}, None, None),
            (3, None, None, None),
            (4, None, ["all"], False),
            (5, None, ["all"], False),
        ]
        command.downgrade(database.alembic_config(engine), "0005")
        with engine.connect() as connection:
            extras = connection.exec_driver_sql("SELECT id, extra FROM mailroom_messages").all()
        # Raw SQL: SQLite hands back the JSON text, PostgreSQL the decoded value.
        restored = {pk: json.loads(e) if isinstance(e, str) else e for pk, e in extras}
        assert restored == {
            1: stored[1],
            2: stored[2],
            3: None,
            4: {"mailroom_scopes": ["all"], "mailroom_required": False},
            5: {"mailroom_scopes": ["all"], "mailroom_required": False},
        }
        database.upgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("sqlite_version", [None, (3, 34, 1)])
def test_downgrades_keep_the_send_log(
    database_url: str, sqlite_version: tuple[int, ...] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downgrading 0006 and 0005 drops their columns of mailroom_messages without touching
    the rows that reference it: on SQLite a table rebuild with foreign keys on would delete
    every attempt (ON DELETE CASCADE). Also with a SQLite too old to drop a column in place."""
    if sqlite_version is not None:
        if not database_url.startswith("sqlite"):
            pytest.skip("a SQLite version")
        monkeypatch.setattr(sqlite3, "sqlite_version_info", sqlite_version)
    engine = create_outbox_engine(database_url)
    try:
        database.upgrade(engine)
        pk = Outbox(load_settings(environ={"DATABASE_URL": database_url}), engine=engine).send(
            note(1), idempotency_key="k"
        )
        with engine.begin() as connection:
            connection.execute(
                attempts.insert().values(
                    message_pk=pk,
                    attempt=1,
                    at=1.0,
                    duration_ms=2.0,
                    recipient="user1@example.com",
                    transport="smtp",
                    outcome="sent",
                    code=250,
                    possible_duplicate=False,
                    worker="w1",
                )
            )
        command.downgrade(database.alembic_config(engine), "0004")
        with engine.connect() as connection:
            assert connection.exec_driver_sql(
                "SELECT message_pk, recipient FROM mailroom_attempts"
            ).all() == [(pk, "user1@example.com")]
        database.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(select(attempts.c.message_pk, attempts.c.code)).all()
            assert [tuple(row) for row in rows] == [(pk, 250)]
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    finally:
        engine.dispose()


def test_consent_migration_keeps_only_scopes_a_claim_can_check(database_url: str) -> None:
    """Migration 0006 on metadata scopes no claim could check (empty strings, not strings,
    not a list): the non-empty strings stay, and nothing left means ``all``, as an empty
    list did; the migrated rows are claimed."""
    engine = create_outbox_engine(database_url)
    stored = {
        1: {"mailroom_scopes": [""]},
        2: {"mailroom_scopes": 5},
        3: {"mailroom_scopes": ["", "type:t", 3, None], "mailroom_required": True},
        4: {"mailroom_scopes": "type:t"},
        5: {"mailroom_scopes": {"all": True}},
        6: {"mailroom_scopes": None, "mailroom_required": False},
    }
    try:
        database.upgrade(engine, "0005")
        with engine.begin() as connection:
            for pk, extra in stored.items():
                insert_legacy_row(connection, pk, extra)
        database.upgrade(engine)
        with engine.begin() as connection:
            claimed = lease_queries.claim_due(
                connection, now=9e9, limit=10, lease_token="w1", lease_until=9e9 + 60
            )
        assert {m.id: m.consent for m in claimed} == {
            1: ConsentFacts(("all",), False),
            2: ConsentFacts(("all",), False),
            3: ConsentFacts(("type:t",), True),
            4: ConsentFacts(("all",), False),
            5: ConsentFacts(("all",), False),
            6: ConsentFacts(("all",), False),
        }
    finally:
        engine.dispose()


# -- wrong Python types through the API: a MessageError naming the field ---------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject": b"Hello"}, "subject"),
        ({"subject": 42}, "subject"),
        ({"subject": None}, "subject"),
        ({"text": b"hello"}, "text"),
        ({"html": 3.5}, "html"),
        ({"text": "caf\udce9"}, "text"),  # undecodable bytes through surrogateescape
        ({"to": 42}, "to"),
        ({"to": b"ada@example.com"}, "to"),
        ({"to": [b"ada@example.com"]}, "to"),
        ({"to": None}, "to"),  # and nobody else: no recipient at all
        ({"cc": [None]}, "cc"),
        ({"from_email": 7}, "from_email"),
        ({"headers": {"X-Count": 3}}, "header X-Count"),
        ({"headers": ["X-A"]}, "headers"),
        ({"metadata": {"when": datetime(2030, 1, 1)}}, "metadata"),
        ({"metadata": {"ratio": math.nan}}, "metadata"),
        ({"metadata": "order-42"}, "metadata"),
        ({"attachments": [("a.txt", b"x")]}, "attachments"),
        ({"attachments": [Attachment("a.txt", "text")]}, "attachment content"),  # type: ignore[arg-type]
        ({"date": "yesterday"}, "date"),
        ({"sbject": "typo"}, "sbject"),
    ],
)
def test_wrong_types_name_the_field(outbox: Outbox, fields: dict[str, object], field: str) -> None:
    base: dict[str, Any] = {"to": ["ada@example.com"], "subject": "Hi", "text": "hello"}
    with pytest.raises(MessageError) as caught:
        outbox.send(**{**base, **fields})
    assert caught.value.field == field, caught.value
    assert outbox.counts().get(Status.QUEUED, 0) == 0


def test_wrong_types_through_mailroom_send(settings: Settings) -> None:
    box = mailroom.configure(settings)
    database.upgrade(box.engine)
    try:
        with pytest.raises(MessageError) as caught:
            mailroom.send(to="ada@example.com", subject=b"x", text="hello")
        assert caught.value.field == "subject"
        assert "decode" in str(caught.value)
        with pytest.raises(MessageError) as caught:
            mailroom.send(to=None, subject="x", text="hello")
        assert caught.value.field == "to"
        with pytest.raises(MessageError) as caught:
            mailroom.send(to="ada@example.com", text="hi", metadata={"user": object()})
        assert caught.value.field == "metadata"
        with pytest.raises(MessageError) as caught:
            mailroom.send(to="ada@example.com", text="hi", idempotency_key=42)  # type: ignore[arg-type]
        assert caught.value.field == "idempotency_key"
        with pytest.raises(MessageError) as caught:
            mailroom.send(to="ada@example.com", text="hi", send_at="tomorrow")  # type: ignore[arg-type]
        assert caught.value.field == "send_at"
        # None for the optional collections is taken as empty.
        assert mailroom.send(to="ada@example.com", text="hi", headers=None, metadata=None) > 0
    finally:
        box.dispose()

"""Submitted bytes into the outbox (``raw_submissions``): the same row and ``queued`` events a
built message gets, committed in groups by the writer thread, each caller answered on its
event loop only after the commit (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from mailroom.outbox.raw_submissions import (
    RawSubmission,
    SubmissionWriter,
    commit_submissions,
    insert_submissions,
)
from mailroom.outbox.schema import events, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import ConsentFacts


def submission(n: int, **fields: object) -> RawSubmission:
    data = f"From: a@example.com\r\nSubject: n{n}\r\n\r\nbody {n}\r\n".encode()
    values: dict[str, object] = {
        "sender": "a@example.com",
        "recipients": (f"r{n}@example.com", "cc@example.com"),
        "data": data,
        "message_id": f"<{n}@example.com>",
        "subject": f"n{n}",
        "smtputf8": False,
        "stream": "transactional",
        **fields,
    }
    return RawSubmission(**values)  # type: ignore[arg-type]


def test_a_submission_is_stored_as_a_built_message_would_be(outbox: Outbox) -> None:
    consent = ConsentFacts(("all", "list:news"), required=False)
    (message_pk,) = commit_submissions(
        outbox.engine, [submission(1, extra={"mailroom.api_key": 7}, consent=consent)]
    )
    detail = outbox.get(message_pk)
    assert detail is not None
    with outbox.engine.connect() as connection:
        row = connection.execute(select(messages).where(messages.c.id == message_pk)).one()
        queued = connection.execute(
            select(events.c.recipient).where(events.c.message_pk == message_pk)
        ).scalars()
        assert sorted(queued) == ["cc@example.com", "r1@example.com"]
    assert bytes(row.data) == submission(1).data
    assert (row.status, row.stream, row.priority, row.attempts) == ("queued", "transactional", 0, 0)
    assert row.message_id == "<1@example.com>"
    assert row.extra == {"mailroom.api_key": 7}
    assert (row.consent_scopes, row.consent_required) == (["all", "list:news"], False)
    assert row.due_at == row.created_at


def test_the_writer_commits_what_waits_together_and_answers_each_after(outbox: Outbox) -> None:
    async def scenario() -> tuple[list[int], bool]:
        writer = SubmissionWriter(outbox.engine, asyncio.get_running_loop())
        try:
            futures = [writer.submit(submission(n)) for n in range(20)]
            withdrawn = writer.submit(submission(99))
            withdrawn.cancel()
            ids = await asyncio.wait_for(asyncio.gather(*futures), 30)
        finally:
            assert await asyncio.to_thread(writer.close, 10)
        return ids, withdrawn.cancelled()

    ids, cancelled = asyncio.run(scenario())
    assert cancelled
    assert len(set(ids)) == 20
    with outbox.engine.connect() as connection:
        stored = connection.execute(
            select(messages.c.id, messages.c.subject).order_by(messages.c.id)
        ).all()
    assert {row.id: row.subject for row in stored} == {
        message_pk: f"n{n}" for n, message_pk in enumerate(ids)
    }


def test_a_commit_that_fails_fails_every_caller_of_its_group(outbox: Outbox) -> None:
    async def scenario() -> list[BaseException | int]:
        writer = SubmissionWriter(outbox.engine, asyncio.get_running_loop())
        try:
            # No bytes: refused by the database (NOT NULL), whichever group each falls in.
            futures = [writer.submit(submission(n, data=None)) for n in range(3)]
            return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 30)
        finally:
            assert await asyncio.to_thread(writer.close, 10)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
    assert outbox.counts().get("queued", 0) == 0


def test_a_submission_past_its_time_fails_and_is_left_out_of_the_commit(outbox: Outbox) -> None:
    """The writer is held up (another transaction holds the table): the first submission is
    taken and waits; the second, with a time limit, fails with TimeoutError while it waits
    in the queue, and is not stored once the writer goes on."""

    async def scenario() -> tuple[int, BaseException | int]:
        loop = asyncio.get_running_loop()
        writer = SubmissionWriter(outbox.engine, loop)
        blocker = outbox.engine.raw_connection()  # the driver's own: no autobegin
        try:
            cursor = blocker.cursor()
            if outbox.engine.dialect.name == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
            else:
                cursor.execute(f"LOCK TABLE {messages.name} IN EXCLUSIVE MODE")
            first = writer.submit(submission(1))
            await asyncio.sleep(0.3)  # taken by the writer, which now waits for the lock
            late = writer.submit(submission(2), timeout=0.1)
            outcome = (await asyncio.gather(late, return_exceptions=True))[0]
            blocker.rollback()
            return await asyncio.wait_for(first, 30), outcome
        finally:
            blocker.close()
            assert await asyncio.to_thread(writer.close, 10)

    first_pk, outcome = asyncio.run(scenario())
    assert isinstance(outcome, TimeoutError)
    with outbox.engine.connect() as connection:
        stored = connection.execute(select(messages.c.id, messages.c.subject)).all()
    assert [(row.id, row.subject) for row in stored] == [(first_pk, "n1")]


def test_a_failed_insert_is_rolled_back_and_the_connection_goes_on(outbox: Outbox) -> None:
    with outbox.engine.connect() as connection:
        try:
            insert_submissions(connection, [submission(1), submission(2, data=None)])
        except Exception as exc:  # the driver's on SQLite, SQLAlchemy's on PostgreSQL
            failure: Exception | None = exc
        else:
            failure = None
        assert failure is not None
        (message_pk,) = insert_submissions(connection, [submission(3)])
    with outbox.engine.connect() as connection:
        stored = connection.execute(select(messages.c.id, messages.c.subject)).all()
        queued = connection.execute(select(events.c.message_pk)).scalars().all()
    assert [(row.id, row.subject) for row in stored] == [(message_pk, "n3")]
    assert queued == [message_pk, message_pk]  # r3 and cc, nothing of the first group

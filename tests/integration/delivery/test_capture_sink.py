"""The worker's capture sink on a real SQLite file and PostgreSQL: envelopes arriving together
share one commit, each names the message being sent, and a failed write reaches every
waiter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from email.policy import default

import pytest
from sqlalchemy import Engine, event, text

from mailroom.delivery.capture_sink import DatabaseCaptureSink, sending_message_pk, subject_of
from mailroom.delivery.database_thread import DatabaseThread
from mailroom.message import Envelope, Message, build_envelope
from mailroom.outbox.capture_queries import get_captured
from mailroom.outbox.store import Outbox


@pytest.fixture
def engine(outbox: Outbox) -> Engine:
    return outbox.engine


@pytest.fixture
def db() -> Iterator[DatabaseThread]:
    thread = DatabaseThread("test-capture")
    yield thread
    thread.shutdown()


def envelope(i: int) -> Envelope:
    message = Message(to=[f"u{i}@example.com"], subject=f"Note {i} · ünïcode", text="hi")
    return build_envelope(message, default_from="app@example.com")


async def test_envelopes_arriving_together_share_one_commit(
    engine: Engine, db: DatabaseThread
) -> None:
    commits: list[None] = []
    event.listen(engine, "commit", lambda connection: commits.append(None))
    sink = DatabaseCaptureSink(engine, db, keep=100)
    loop = asyncio.get_running_loop()
    blocker = asyncio.Event()
    # Hold the database thread so that all five wait behind one write.
    held = db.submit(lambda: asyncio.run_coroutine_threadsafe(blocker.wait(), loop).result())
    sent = [envelope(i) for i in range(5)]
    waiting = [asyncio.create_task(sink(e)) for e in sent]
    await asyncio.sleep(0.05)
    blocker.set()
    ids = await asyncio.gather(*waiting)
    await asyncio.wrap_future(held)
    assert len(commits) == 1  # one transaction for all five
    with engine.connect() as connection:
        stored = [get_captured(connection, i) for i in ids]
    assert [(s.subject, s.data, s.message_pk) if s else None for s in stored] == [
        (f"Note {i} · ünïcode", e.data, None) for i, e in enumerate(sent)
    ]


async def test_names_the_message_being_sent(outbox: Outbox, db: DatabaseThread) -> None:
    message_pk = outbox.send(Message(to=["a@example.com"], subject="s", text="t"))
    sink = DatabaseCaptureSink(outbox.engine, db, keep=100)

    async def send_for(pk: int | None) -> int:
        sending_message_pk.set(pk)  # as the worker's sender does, in its own task
        return await sink(envelope(pk or 0))

    ids = await asyncio.gather(asyncio.create_task(send_for(message_pk)), send_for(None))
    with outbox.engine.connect() as connection:
        found = [get_captured(connection, i) for i in ids]
    assert [c.message_pk if c else "missing" for c in found] == [message_pk, None]


async def test_a_failed_write_fails_every_waiter(engine: Engine, db: DatabaseThread) -> None:
    sink = DatabaseCaptureSink(engine, db, keep=100)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE mailroom_captured"))
    results = await asyncio.gather(sink(envelope(1)), sink(envelope(2)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), results
    assert "mailroom_captured" in str(results[0])


@pytest.mark.parametrize(
    "subject",
    [
        "Hello",
        "Grüße, pair",
        "A very long subject that the builder folds over several lines " * 4,
        "Мир " * 30 + "end",
        "mixed ascii and 日本語 text",
        "=?utf-8?q?looks encoded?=",
        "  spaced  out  ",
    ],
)
@pytest.mark.parametrize("to", ["a@example.com", "ü@exämple.com"], ids=["ascii", "smtputf8"])
def test_subject_of_reads_what_the_email_parser_reads(subject: str, to: str) -> None:
    data = build_envelope(
        Message(to=[to], subject=subject, text="x"), default_from="app@example.com"
    ).data
    expected = BytesHeaderParser(policy=default).parsebytes(data)["subject"]
    assert subject_of(data) == str(expected)


def test_subject_of_a_message_without_one_or_with_a_broken_word() -> None:
    assert subject_of(b"From: a@example.com\r\n\r\nSubject: in the body\r\n") == ""
    assert subject_of(b"Subject: =?utf-8?q?broken?=?=\r\n\r\n") == "broken ?="
    assert subject_of(b"subject: raw \xc3\xbc\r\n\r\n") == "raw \u00fc"

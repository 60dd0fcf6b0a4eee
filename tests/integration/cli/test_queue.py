"""``mailroom queue list|show|retry|cancel|purge`` on a real SQLite file and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select, update

from mailroom.cli import main
from mailroom.config import SETTING_NAMES, load_settings
from mailroom.message import Message
from mailroom.outbox import database, queries
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import FINAL, Status
from support.smtp_server import SMTPTestServer

DAY = 86_400.0


@pytest.fixture
def outbox(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:
    monkeypatch.chdir(tmp_path)  # no mailroom.toml from the working directory
    box = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    database.upgrade(box.engine)
    yield box
    box.dispose()


def run(database_url: str, *args: str) -> Result:
    # None unsets: no setting from the developer's shell leaks into the test.
    clean: dict[str, str | None] = dict.fromkeys(
        (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    )
    return CliRunner().invoke(
        main, ["queue", *args], env={**clean, "DATABASE_URL": database_url}, catch_exceptions=False
    )


def enqueue(outbox: Outbox, to: str, *, stream: str = "transactional", subject: str = "Hi") -> int:
    return outbox.send(Message(to=[to], subject=subject, text="hello"), stream=stream)


def set_rows(engine: Engine, ids: Sequence[int], **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(messages).where(messages.c.id.in_(list(ids))).values(**values))


def statuses(engine: Engine) -> dict[int, Status]:
    with engine.connect() as connection:
        rows = connection.execute(select(messages.c.id, messages.c.status))
        return {row.id: Status(row.status) for row in rows}


def one_of_each(outbox: Outbox, *, age: float = 10 * DAY) -> dict[Status, int]:
    """One message in every status, created and last changed ``age`` ago."""
    ids = {status: enqueue(outbox, f"{status.value}@example.com") for status in Status}
    then = time.time() - age
    for status, message_pk in ids.items():
        set_rows(
            outbox.engine,
            [message_pk],
            status=status.value,
            created_at=then,
            updated_at=then,
            attempts=2,
        )
    return ids


def log_attempt(engine: Engine, message_pk: int, n: int, text: str) -> None:
    row = {
        "message_pk": message_pk,
        "attempt": n,
        "at": time.time(),
        "duration_ms": 40.0,
        "recipient": "ada@example.com",
        "transport": "smtp",
        "outcome": "deferred",
        "code": 451,
        "enhanced_status": "4.7.1",
        "server_text": text,
        "possible_duplicate": n == 2,
        "worker": "worker-a",
    }
    with engine.begin() as connection:
        queries.record_attempts(connection, [row])


# -- list --------------------------------------------------------------------------------


def test_list_prints_an_aligned_table(outbox: Outbox, database_url: str) -> None:
    ada = enqueue(outbox, "ada@example.com", subject="Welcome aboard")
    bob = enqueue(outbox, "bob@example.com", stream="bulk", subject="News")
    set_rows(outbox.engine, [bob], status=Status.FAILED.value, last_error="550 5.1.1 no such user")
    result = run(database_url, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header, first, second, summary = lines
    assert header.split() == [
        "ID",
        "STATUS",
        "STREAM",
        "ATT",
        "CREATED",
        "(UTC)",
        "DUE",
        "(UTC)",
        "TO",
        "SUBJECT",
        "LAST",
        "ERROR",
    ]
    assert first.split()[:3] == [str(bob), "failed", "bulk"]  # newest first
    assert first.endswith("550 5.1.1 no such user")
    assert second.split()[:3] == [str(ada), "queued", "transactional"]
    # Columns line up: each column starts at the same offset on every line.
    for column in ("STATUS", "STREAM", "TO", "SUBJECT"):
        offset = header.index(column)
        assert first[offset - 2 : offset] == "  "
        assert first[offset] != " "
        assert second[offset] != " "
    assert "bob@example.com" in first
    assert summary == "2 shown, 2 match in all"


def test_list_filters_limit_and_pages(outbox: Outbox, database_url: str) -> None:
    ids = outbox.send_many(
        [Message(to=[f"user{i}@example.com"], subject=f"n{i}", text="x") for i in range(5)],
        stream="bulk",
    )
    old = enqueue(outbox, "Old.Timer@example.com")
    set_rows(outbox.engine, [old], created_at=time.time() - 3 * DAY)

    result = run(database_url, "list", "--limit", "2")
    assert result.exit_code == 0, result.output
    # Newest by id first: the "old" message was enqueued last.
    assert f"2 shown, 6 match in all; next page: --before-id {ids[4]}" in result.output

    result = run(database_url, "list", "--json", "--limit", "2", "--before-id", str(ids[4]))
    page = json.loads(result.output)
    assert [m["id"] for m in page["messages"]] == [ids[3], ids[2]]
    assert page["next_before_id"] == ids[2]
    assert page["total"] == 6
    assert page["messages"][0]["status"] == "queued"
    assert page["messages"][0]["recipients"] == ["user3@example.com"]

    def listed(*options: str) -> list[int]:
        shown = run(database_url, "list", "--json", *options)
        assert shown.exit_code == 0, shown.output
        return [m["id"] for m in json.loads(shown.output)["messages"]]

    assert listed("--stream", "bulk") == ids[::-1]
    assert listed("--to", "old.TIMER") == [old]
    assert listed("--older-than", "2d") == [old]
    assert listed("--newer-than", "1h") == ids[::-1]
    assert listed("--status", "failed") == []
    assert listed("--status", "queued", "--to", "user4") == [ids[4]]

    nothing = run(database_url, "list", "--stream", "nope")
    assert nothing.exit_code == 0
    assert nothing.output == "no messages match\n"


@pytest.mark.parametrize("bad", ["7", "7x", "d", "-1d", "1d 2h", "two days"])
def test_a_bad_duration_is_refused_with_the_format(
    outbox: Outbox, database_url: str, bad: str
) -> None:
    result = run(database_url, "list", "--older-than", bad)
    assert result.exit_code == 2
    assert "is not a duration" in result.output
    assert "like 30m, 2h, 7d" in result.output


@pytest.mark.parametrize(
    ("duration", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d12h", 129_600)]
)
def test_durations(outbox: Outbox, database_url: str, duration: str, seconds: int) -> None:
    just_inside = enqueue(outbox, "inside@example.com")
    just_outside = enqueue(outbox, "outside@example.com")
    now = time.time()
    set_rows(outbox.engine, [just_inside], created_at=now - seconds - 60)
    set_rows(outbox.engine, [just_outside], created_at=now - seconds + 60)
    result = run(database_url, "list", "--json", "--older-than", duration)
    assert [m["id"] for m in json.loads(result.output)["messages"]] == [just_inside]


def test_refuses_an_unmigrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(f"sqlite:///{tmp_path / 'empty.db'}", "list")
    assert result.exit_code == 1
    assert "mailroom db upgrade" in result.output


# -- show --------------------------------------------------------------------------------


def test_show_prints_fields_headers_and_attempts(outbox: Outbox, database_url: str) -> None:
    message_pk = outbox.send(
        Message(
            to=["Ada <ada@example.com>"],
            subject="Your receipt",
            text="thanks",
            from_email="Shop <shop@example.com>",
        ),
        idempotency_key="order-7",
    )
    log_attempt(outbox.engine, message_pk, 1, "greylisted, try later")
    log_attempt(outbox.engine, message_pk, 2, "still greylisted")
    set_rows(outbox.engine, [message_pk], status=Status.DEFERRED.value, attempts=2)

    result = run(database_url, "show", str(message_pk))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"message {message_pk}\n")
    shown_lines = (
        "  status           deferred",
        "  attempts         2",
        "  idempotency key  order-7",
        "  consent          plain send: checked against scope all",
        "  envelope to      ada@example.com",
        "  From: Shop <shop@example.com>",
        "  To: Ada <ada@example.com>",
        "  Subject: Your receipt",
        "  Date: ",
        "  Message-ID: <",
        "send log (2 rows)",
        "#1",
        "451 4.7.1 greylisted, try later",
        "still greylisted (smtp, worker-a, 40 ms) [possible duplicate]",
    )
    for line in shown_lines:
        assert line in out
    assert out.index("greylisted, try later") < out.index("still greylisted")

    shown = json.loads(run(database_url, "show", "--json", str(message_pk)).output)
    assert shown["id"] == message_pk
    assert shown["status"] == "deferred"
    assert shown["headers"]["Subject"] == "Your receipt"
    assert shown["headers"]["Message-ID"] == shown["message_id"]
    assert shown["headers"]["Cc"] is None
    assert [a["server_text"] for a in shown["attempts_log"]] == [
        "greylisted, try later",
        "still greylisted",
    ]
    assert "data" not in shown
    assert shown["size"] > 0
    assert (shown["consent_scopes"], shown["consent_required"]) == (None, None)


def test_show_a_message_with_no_attempts(outbox: Outbox, database_url: str) -> None:
    message_pk = enqueue(outbox, "ada@example.com")
    result = run(database_url, "show", str(message_pk))
    assert result.exit_code == 0, result.output
    assert "send log: no attempts yet" in result.output


def test_show_an_unknown_id(outbox: Outbox, database_url: str) -> None:
    result = run(database_url, "show", "424242")
    assert result.exit_code == 1
    assert "there is no message with id 424242" in result.output


# -- retry and cancel --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["retry", "cancel"])
def test_refuses_to_act_on_everything_without_all(
    outbox: Outbox, database_url: str, command: str
) -> None:
    ids = one_of_each(outbox)
    before = statuses(outbox.engine)
    for options in ([], ["--to", ""]):
        result = run(database_url, command, *options)
        assert result.exit_code == 2
        assert "give message IDs or a filter" in result.output
        assert "--all" in result.output
    assert statuses(outbox.engine) == before
    assert len(ids) == len(Status)


def test_retry_all_leaves_sent_and_sending_alone(outbox: Outbox, database_url: str) -> None:
    ids = one_of_each(outbox)
    result = run(database_url, "retry", "--all")
    assert result.exit_code == 0, result.output
    assert result.output == "3 messages queued again\n"
    after = statuses(outbox.engine)
    for status in (Status.FAILED, Status.DEFERRED, Status.CANCELLED):
        assert after[ids[status]] is Status.QUEUED
    for status in (Status.SENT, Status.SENDING, Status.QUEUED, Status.SCHEDULED):
        assert after[ids[status]] is status
    failed = outbox.get(ids[Status.FAILED])
    assert failed is not None
    assert failed.attempts == 0
    assert failed.due_at == pytest.approx(time.time(), abs=30)


def test_retry_by_id_says_which_were_left_alone(outbox: Outbox, database_url: str) -> None:
    ids = one_of_each(outbox)
    result = run(database_url, "retry", str(ids[Status.FAILED]), str(ids[Status.SENT]), "999999")
    assert result.exit_code == 0, result.output
    assert "1 message queued again" in result.output
    assert "2 of the given ids were left alone" in result.output
    assert statuses(outbox.engine)[ids[Status.SENT]] is Status.SENT


def test_retry_offers_only_retryable_statuses(outbox: Outbox, database_url: str) -> None:
    result = run(database_url, "retry", "--status", "sent")
    assert result.exit_code == 2
    assert "'sent' is not one of" in result.output


def test_retry_by_filter(outbox: Outbox, database_url: str) -> None:
    bulk = [enqueue(outbox, f"b{i}@example.com", stream="bulk") for i in range(3)]
    other = enqueue(outbox, "t@example.com")
    set_rows(outbox.engine, [*bulk, other], status=Status.FAILED.value)
    result = run(database_url, "retry", "--stream", "bulk", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert result.output == "3 messages queued again\n"
    assert statuses(outbox.engine)[other] is Status.FAILED


def test_cancel_by_filter_leaves_sending_alone(outbox: Outbox, database_url: str) -> None:
    ids = one_of_each(outbox)
    fresh = enqueue(outbox, "fresh@example.com")
    result = run(database_url, "cancel", "--older-than", "1d")
    assert result.exit_code == 0, result.output
    assert result.output == "3 messages cancelled\n"
    after = statuses(outbox.engine)
    for status in (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED):
        assert after[ids[status]] is Status.CANCELLED
    assert after[ids[Status.SENDING]] is Status.SENDING
    assert after[ids[Status.SENT]] is Status.SENT
    assert after[fresh] is Status.QUEUED

    result = run(database_url, "cancel", str(ids[Status.SENDING]))
    assert result.output.startswith("0 messages cancelled\n")
    assert "1 of the given ids were left alone" in result.output
    assert statuses(outbox.engine)[ids[Status.SENDING]] is Status.SENDING


# -- purge -------------------------------------------------------------------------------


def count_attempts(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(attempts)).scalar() or 0)


def test_purge_needs_older_than(outbox: Outbox, database_url: str) -> None:
    result = run(database_url, "purge")
    assert result.exit_code == 2
    assert "--older-than" in result.output


def test_purge_dry_run_then_purge(outbox: Outbox, database_url: str) -> None:
    ids = one_of_each(outbox, age=10 * DAY)
    recent = one_of_each(outbox, age=DAY)
    for message_pk in [*ids.values(), *recent.values()]:
        log_attempt(outbox.engine, message_pk, 1, "x")

    dry = run(database_url, "purge", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[-1] == f"would delete {len(FINAL)} messages (dry run)"
    for status in FINAL:
        assert any(line.startswith(f"{ids[status]} ") for line in dry.output.splitlines())
    assert len(statuses(outbox.engine)) == 2 * len(Status)
    assert count_attempts(outbox.engine) == 2 * len(Status)

    result = run(database_url, "purge", "--older-than", "7d", "--status", "sent")
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 1 message and their send log\n"

    result = run(database_url, "purge", "--older-than", "7d")
    assert result.output == f"deleted {len(FINAL) - 1} messages and their send log\n"
    left = statuses(outbox.engine)
    assert set(left) == {
        *recent.values(),
        *(ids[s] for s in (Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.DEFERRED)),
    }
    assert count_attempts(outbox.engine) == len(left)  # the send log went with its messages

    # However short the age, live messages stay.
    result = run(database_url, "purge", "--older-than", "0s")
    assert result.output == f"deleted {len(FINAL)} messages and their send log\n"
    assert set(statuses(outbox.engine).values()) == {
        Status.QUEUED,
        Status.SCHEDULED,
        Status.SENDING,
        Status.DEFERRED,
    }


def test_purge_offers_only_final_statuses(outbox: Outbox, database_url: str) -> None:
    result = run(database_url, "purge", "--older-than", "1d", "--status", "queued")
    assert result.exit_code == 2
    assert "'queued' is not one of" in result.output


# -- operators' fixes --------------------------------------------------------------------


def test_cancel_then_retry_keeps_a_schedule(outbox: Outbox, database_url: str) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    scheduled = outbox.send(
        Message(to=["ada@example.com"], subject="Later", text="x"), send_at=tomorrow
    )
    failed = enqueue(outbox, "bob@example.com")
    set_rows(outbox.engine, [failed], status=Status.FAILED.value, attempts=3)

    assert run(database_url, "cancel", str(scheduled)).output == "1 message cancelled\n"
    result = run(database_url, "retry", str(scheduled), str(failed))
    assert result.exit_code == 0, result.output
    assert result.output == "2 messages queued again\n"

    again = outbox.get(scheduled)
    assert again is not None
    assert again.status is Status.SCHEDULED  # not sent at once
    assert again.due_at == pytest.approx(tomorrow.timestamp(), abs=1)
    now_due = outbox.get(failed)
    assert now_due is not None
    assert now_due.status is Status.QUEUED
    assert now_due.due_at == pytest.approx(time.time(), abs=30)


def test_show_prints_every_header_and_the_raw_message(outbox: Outbox, database_url: str) -> None:
    message_pk = outbox.send(
        Message(
            to=["ada@example.com"],
            subject="Receipt",
            text="thanks",
            reply_to=["help@example.com"],
            headers={"X-Order": "7"},
        )
    )
    detail = run(database_url, "show", str(message_pk))
    assert detail.exit_code == 0, detail.output
    for field in ("X-Order: 7", "Reply-To: help@example.com", "MIME-Version: 1.0"):
        assert f"  {field}\n" in detail.output

    with outbox.engine.connect() as connection:
        stored = connection.execute(
            select(messages.c.data).where(messages.c.id == message_pk)
        ).scalar_one()
    # Into a pipe or file the bytes come out exactly, to be saved as an .eml.
    raw = CliRunner().invoke(
        main,
        ["queue", "show", "--raw", str(message_pk)],
        env={"DATABASE_URL": database_url},
        catch_exceptions=False,
    )
    assert raw.exit_code == 0
    assert raw.stdout_bytes == bytes(stored)


def test_a_follow_up_row_shows_the_reply_that_deferred_it(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.rcpt_replies["bob@example.com"] = "451 4.2.1 mailbox busy, try later"
    outbox.send(Message(to=["ada@example.com", "bob@example.com"], subject="Hi", text="x"))
    env = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
    }
    worker = CliRunner().invoke(main, ["worker", "--once"], env=env, catch_exceptions=False)
    assert worker.exit_code == 0, worker.output

    listed = json.loads(run(database_url, "list", "--json", "--status", "deferred").output)
    (followup,) = listed["messages"]
    assert followup["recipients"] == ["bob@example.com"]
    assert followup["last_error"] == "mailbox busy, try later"
    shown = run(database_url, "show", str(followup["id"]))
    assert "  last error       451 4.2.1 mailbox busy, try later" in shown.output

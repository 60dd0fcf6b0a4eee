"""Django's mail API called from async code — an ``async def`` view, a coroutine — through
Mailroom's backend, in both modes, on SQLite and PostgreSQL: the message is committed before
the call returns (on a thread of its own: Django allows no query on the loop's thread), a
worker delivers it, a failing commit raises (or is silenced), a slow one times out, and no
Django connection outlives its send."""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, text

from mailroom.delivery.worker import WorkerStats
from mailroom.errors import (
    DatabaseUnreachableError,
    EnqueueTimeoutError,
    IdempotencyConflictError,
    SettingsError,
)
from support.smtp_server import SMTPTestServer

Deliver = Callable[[], WorkerStats]
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """A coroutine on a fresh event loop in this thread, as a view runs under ASGI."""
    return asyncio.run(coroutine)


def subjects(server: SMTPTestServer) -> list[str]:
    return sorted(
        str(message_from_bytes(r.data, policy=policy.default)["Subject"])
        for r in server.handler.received
    )


def commit_threads() -> list[threading.Thread]:
    from mailroom.integrations.django.off_loop import THREAD_NAME  # noqa: PLC0415

    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def join_commit_threads() -> None:
    for thread in commit_threads():
        thread.join(30)
    assert not commit_threads(), "a commit thread still runs after 30 s"


@contextmanager
def drained(deliver: Deliver) -> Iterator[None]:
    """What the block queued is delivered after it, even when one of its assertions failed:
    the next test starts with nothing of it in the outbox the session shares."""
    try:
        yield
    finally:
        join_commit_threads()
        deliver()


@pytest.fixture(params=["shared", "separate"])
def mode(
    request: pytest.FixtureRequest, alias: str, smtp_server: SMTPTestServer, deliver: Deliver
) -> Iterator[str]:
    """Django's settings pointed at ``smtp_server``, the outbox in ``alias``'s database
    (shared) or in a database of its own of the same kind (separate, following ``alias``'s
    transactions); what the test queued is delivered after it, out of the next test's way."""
    from django.core.management import call_command  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    mailroom: dict[str, Any] = {"DATABASE": alias}
    created = None
    postgres_admin: Engine | None = request.getfixturevalue("postgres_admin")
    if request.param == "separate":
        if alias == "default":
            tmp_path: Path = request.getfixturevalue("tmp_path")
            mailroom["DATABASE_URL"] = f"sqlite:///{tmp_path / 'separate.db'}"
        else:
            assert postgres_admin is not None  # the pg alias exists only with it
            created = f"mailroom_async_{secrets.token_hex(6)}"
            with postgres_admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{created}"'))
            url = postgres_admin.url.set(database=created)
            mailroom["DATABASE_URL"] = url.render_as_string(hide_password=False)
    try:
        with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM=mailroom):
            if "DATABASE_URL" in mailroom:
                call_command("mailroom_migrate", stdout=io.StringIO())
            yield str(request.param)
            join_commit_threads()
            deliver()
    finally:
        # Leaving override_settings disposed of the separate outbox's engine.
        if created is not None and postgres_admin is not None:
            with postgres_admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))


def outbox_subject(message_pk: int) -> str | None:
    """The subject the outbox holds for ``message_pk`` (its own connection: committed only)."""
    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415
    from mailroom.outbox.store import Outbox  # noqa: PLC0415

    outbox = Outbox(current_settings().settings)
    try:
        detail = outbox.get(message_pk)
        return None if detail is None else detail.subject
    finally:
        outbox.dispose()


# An async view ----------------------------------------------------------------------------


def test_an_async_view_sends_and_the_worker_delivers(
    mode: str, smtp_server: SMTPTestServer, deliver: Deliver
) -> None:
    """``shop.views.place_order`` is an ``async def`` view calling ``send_mail``,
    ``EmailMessage.send`` and ``mail_admins`` as a sync view would. Without the backend's
    thread, Django refuses its first query (``SynchronousOnlyOperation``)."""
    from django.test import AsyncClient  # noqa: PLC0415

    response = run(AsyncClient().get("/orders/place/", {"to": "zoe@example.com"}))
    assert response.status_code == 200
    body = response.json()
    assert body["sent"] == 1
    # Committed before send() returned, in both modes: there is no transaction to wait for.
    assert isinstance(body["receipt"], int)
    assert outbox_subject(body["receipt"]) == "Your receipt"
    assert deliver().sent == 3
    assert subjects(smtp_server) == [
        "Order placed",
        "Your receipt",
        "[shop] an order was placed",
    ]
    assert not commit_threads()


def test_a_coroutine_sends_and_queued_receivers_may_query(
    mode: str, alias: str, smtp_server: SMTPTestServer, deliver: Deliver
) -> None:
    """Any coroutine, not only a view; ``send_mass_mail`` commits its messages together. The
    ``queued`` receivers run on the commit's thread, after the commit, where the ORM works as
    in sync code (on the loop's thread it would be refused)."""
    from django.core.mail import EmailMessage, send_mass_mail  # noqa: PLC0415

    from integration.integrations.django_project.shop.models import Order  # noqa: PLC0415
    from mailroom.integrations.django import signals  # noqa: PLC0415

    heard: list[tuple[int, int]] = []

    def on_queued(sender: object, message_pk: int, **kwargs: Any) -> None:
        heard.append((message_pk, Order.objects.using(alias).count()))

    async def send() -> tuple[int, EmailMessage]:
        sent = send_mass_mail(
            (
                ("Mass one", "1", None, ["one@example.com"]),
                ("Mass two", "2", None, ["two@example.com"]),
            )
        )
        single = EmailMessage("Single", "3", to=["three@example.com"])
        single.send()
        return sent, single

    signals.queued.connect(on_queued)
    try:
        sent, single = run(send())
    finally:
        signals.queued.disconnect(on_queued)
    assert sent == 2
    pk = single.mailroom_status  # type: ignore[attr-defined]
    assert isinstance(pk, int)
    assert len(heard) == 3
    assert heard[-1][0] == pk
    assert deliver().sent == 3
    assert subjects(smtp_server) == ["Mass one", "Mass two", "Single"]


# A failing commit ----------------------------------------------------------------------------


def test_a_failing_commit_raises_or_is_silenced(
    mode: str, deliver: Deliver, caplog: pytest.LogCaptureFixture
) -> None:
    """The commit fails on its thread (a key reused for other content: the insert's
    transaction rolls back); the caller gets the error as sync code does, or, with
    ``fail_silently``, 0 and a warning."""
    from django.core.mail import EmailMessage  # noqa: PLC0415

    key = f"async-conflict-{secrets.token_hex(6)}"

    def keyed(body: str) -> EmailMessage:
        message = EmailMessage("keyed", body, to=["k@example.com"])
        message.idempotency_key = key  # type: ignore[attr-defined]
        return message

    async def send(message: EmailMessage, fail_silently: bool = False) -> int:
        return message.send(fail_silently=fail_silently)

    first = keyed("one")
    assert run(send(first)) == 1
    other = keyed("two")
    with pytest.raises(IdempotencyConflictError):
        run(send(other))
    assert other.mailroom_status is None  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, "mailroom.integrations.django.backend"):
        assert run(send(keyed("two"), fail_silently=True)) == 0
    assert any("not queued" in r.getMessage() for r in caplog.records)
    assert deliver().sent == 1  # the first, once
    assert not commit_threads()


def test_an_unreachable_separate_outbox_raises_in_async_code(
    django_project: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Outside a transaction — always, in async code — the separate mode's failure is the
    caller's, as in sync code outside an ``atomic`` block."""
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    unreachable = "postgresql://postgres@127.0.0.1:1/none"

    async def send(fail_silently: bool) -> int:
        return send_mail("Nowhere", "b", None, ["a@example.com"], fail_silently=fail_silently)

    with override_settings(MAILROOM={"DATABASE": "default", "DATABASE_URL": unreachable}):
        with pytest.raises(DatabaseUnreachableError, match="DATABASE_URL"):
            run(send(fail_silently=False))
        with caplog.at_level(logging.WARNING, "mailroom.integrations.django.backend"):
            assert run(send(fail_silently=True)) == 0
    assert any("not queued" in r.getMessage() for r in caplog.records)
    assert not commit_threads()


# A commit slower than its timeout -------------------------------------------------------------


def test_a_commit_slower_than_the_timeout(
    django_project: list[str],
    smtp_server: SMTPTestServer,
    deliver: Deliver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another session holds SQLite's write lock (Django's connection waits up to its 20 s
    ``timeout`` for it): after ``ASYNC_SEND_TIMEOUT`` the caller gets an
    :class:`EnqueueTimeoutError` (or, with ``fail_silently``, 0), the loop goes on, and the
    commit completes once the lock is free, and that is logged: the caller could not know."""
    from django.core.mail import EmailMessage  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    async def send(message: EmailMessage, fail_silently: bool = False) -> int:
        return message.send(fail_silently=fail_silently)

    settings = {"DATABASE": "default", "ASYNC_SEND_TIMEOUT": 0.5}
    with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM=settings), drained(deliver):
        blocker = sqlite3.connect(
            connections["default"].settings_dict["NAME"], timeout=5, isolation_level=None
        )
        try:
            blocker.execute("BEGIN IMMEDIATE")
            late = EmailMessage("late", "b", to=["a@example.com"])
            started = time.monotonic()
            with pytest.raises(EnqueueTimeoutError, match=r"ASYNC_SEND_TIMEOUT.*not known"):
                run(send(late))
            assert 0.5 <= time.monotonic() - started < 5
            assert late.mailroom_status is None  # type: ignore[attr-defined]
            with caplog.at_level(logging.WARNING, "mailroom.integrations.django.backend"):
                silenced = EmailMessage("late, silenced", "b", to=["a@example.com"])
                assert run(send(silenced, fail_silently=True)) == 0
            assert any("may not be queued" in r.getMessage() for r in caplog.records)
            assert len(commit_threads()) == 2  # still waiting for the lock
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        with caplog.at_level(logging.WARNING, "mailroom.integrations.django.off_loop"):
            join_commit_threads()
        late_commits = [r.getMessage() for r in caplog.records if "given up on" in r.getMessage()]
        assert len(late_commits) == 2
        assert all(
            m.endswith(": queued") and "1 message(s) (Message-ID <" in m for m in late_commits
        )
        assert isinstance(late.mailroom_status, int)  # type: ignore[attr-defined]
        assert deliver().sent == 2
    assert subjects(smtp_server) == ["late", "late, silenced"]


def test_the_commit_thread_hands_back_value_error_and_a_late_outcome(
    django_project: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``run_off_loop`` itself: the value (``None`` too), the caller's context, the error
    raised in the caller; past the timeout, how the abandoned work ended is logged."""
    from mailroom.integrations.django.off_loop import THREAD_NAME, run_off_loop  # noqa: PLC0415

    language: contextvars.ContextVar[str] = contextvars.ContextVar("language")
    language.set("de")
    seen = run_off_loop(
        lambda: (threading.current_thread().name, language.get()), timeout=5, what="a probe"
    )
    assert seen == (THREAD_NAME, "de")
    assert run_off_loop(lambda: None, timeout=5, what="a probe") is None

    def missing() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        run_off_loop(missing, timeout=5, what="a probe")

    release = threading.Event()

    def late_failure() -> None:
        release.wait(10)
        raise ValueError("late")

    with pytest.raises(EnqueueTimeoutError, match=r"^the commit of two probes, sent from async"):
        run_off_loop(late_failure, timeout=0.1, what="two probes")
    with caplog.at_level(logging.WARNING, "mailroom.integrations.django.off_loop"):
        release.set()
        join_commit_threads()
    [record] = [r for r in caplog.records if "given up on" in r.getMessage()]
    assert record.getMessage().startswith("the commit of two probes, given up on by its caller")
    assert record.getMessage().endswith(": not queued")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


# No connection left behind --------------------------------------------------------------------


def _backend_pid(connection: Any) -> int | None:
    """The PostgreSQL session behind a Django connection (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    return int(row[0])


def _live_sessions(alias: str, pids: list[int]) -> int:
    """How many of ``pids`` PostgreSQL still has, once they have had 5 s to end (a session
    leaves ``pg_stat_activity`` a moment after its client closes the connection)."""
    from django.db import connections  # noqa: PLC0415

    deadline = time.monotonic() + 5
    while True:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
            row = cursor.fetchone()
        live = int(row[0])
        if live == 0 or time.monotonic() > deadline:
            return live
        time.sleep(0.05)


def test_no_django_connection_outlives_its_send(
    alias: str, smtp_server: SMTPTestServer, deliver: Deliver
) -> None:
    """Many sends from async code (the shared mode, where each commit uses a Django
    connection): each opens a connection of its own on its thread and closes it there — on
    PostgreSQL its session ends — and no commit thread is left."""
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.db.backends.signals import connection_created  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    from mailroom.integrations.django.off_loop import THREAD_NAME  # noqa: PLC0415

    sends = 25
    opened: list[tuple[str, Any, int | None]] = []

    def on_created(sender: object, connection: Any, **kwargs: Any) -> None:
        # Held here, so a connection left open stays open (and its session alive) to the end.
        opened.append((threading.current_thread().name, connection, _backend_pid(connection)))

    async def send_many() -> None:
        for n in range(sends):
            assert send_mail(f"many {n}", "b", None, ["a@example.com"]) == 1

    with (
        override_settings(EMAIL_PORT=smtp_server.port, MAILROOM={"DATABASE": alias}),
        drained(deliver),
    ):
        connection_created.connect(on_created)
        try:
            run(send_many())
        finally:
            connection_created.disconnect(on_created)
        assert not commit_threads()
        assert len(opened) == sends  # one each: no connection shared between two sends
        assert {name for name, _, _ in opened} == {THREAD_NAME}
        assert [wrapper.connection for _, wrapper, _ in opened] == [None] * sends  # all closed
        pids = [pid for _, _, pid in opened if pid is not None]
        if alias == "pg":
            assert len(set(pids)) == sends
            assert _live_sessions(alias, pids) == 0
        assert deliver().sent == sends


# DJANGO_ALLOW_ASYNC_UNSAFE ----------------------------------------------------------------------


def test_django_allow_async_unsafe_keeps_the_callers_transaction(
    mode: str, alias: str, deliver: Deliver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the project's ``DJANGO_ALLOW_ASYNC_UNSAFE`` the loop's thread may use its own
    connection, as Django allows; a send there is the sync one, in the caller's block: a
    rollback sends nothing, and the separate mode waits for the commit."""
    from django.core.mail import EmailMessage  # noqa: PLC0415
    from django.db import connections, transaction  # noqa: PLC0415

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    async def in_a_block(rollback: bool) -> tuple[EmailMessage, object]:
        message = EmailMessage("unsafe", "b", to=["a@example.com"])
        with transaction.atomic(using=alias):
            assert message.send() == 1
            inside = message.mailroom_status  # type: ignore[attr-defined]
            transaction.set_rollback(rollback, using=alias)
        return message, inside

    try:
        run(in_a_block(rollback=True))
        assert deliver().sent == 0
        message, inside = run(in_a_block(rollback=False))
        assert (inside is None) is (mode == "separate")
        assert isinstance(message.mailroom_status, int)  # type: ignore[attr-defined]
        assert not commit_threads()
        assert deliver().sent == 1
    finally:
        connections.close_all()  # what the loop's thread (this one) opened under the flag


# The setting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, "30", True, float("nan"), float("inf"), None])
def test_a_bad_async_send_timeout_names_the_setting(
    django_project: list[str], value: object
) -> None:
    from django.test.utils import override_settings  # noqa: PLC0415

    from mailroom.integrations.django.settings import mailroom_settings  # noqa: PLC0415

    with (
        override_settings(MAILROOM={"DATABASE": "default", "ASYNC_SEND_TIMEOUT": value}),
        pytest.raises(SettingsError, match=r"MAILROOM: ASYNC_SEND_TIMEOUT must be a number"),
    ):
        mailroom_settings()
    with override_settings(MAILROOM={"DATABASE": "default", "ASYNC_SEND_TIMEOUT": 2}):
        assert mailroom_settings().async_timeout == 2.0
    with override_settings(MAILROOM={"DATABASE": "default"}):
        assert mailroom_settings().async_timeout == 30.0

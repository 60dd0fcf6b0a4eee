"""The error-mail handler, enqueueing into a real outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from mailroom.config import Settings, load_settings
from mailroom.integrations.logging import AdminEmailHandler
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from support.mail_checks import assert_well_formed, stored_messages, text_part


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        environ={},
        DATABASE_URL=database_url,
        ADMINS="Grace Hopper <grace@acme.example>, ops@acme.example",
        SERVER_EMAIL="Acme errors <errors@acme.example>",
        EMAIL_SUBJECT_PREFIX="[Acme] ",
    )


@pytest.fixture
def outbox(settings: Settings) -> Iterator[Outbox]:
    box = Outbox(settings)
    database.upgrade(box.engine)
    yield box
    for data in stored_messages(box.engine):
        assert_well_formed(data)
    box.dispose()


@pytest.fixture
def make_logger() -> Iterator[Callable[[AdminEmailHandler], logging.Logger]]:
    handlers: list[tuple[logging.Logger, AdminEmailHandler]] = []

    def make(handler: AdminEmailHandler) -> logging.Logger:
        logger = logging.getLogger(f"app.test.{len(handlers)}")
        logger.addHandler(handler)
        logger.propagate = False
        handlers.append((logger, handler))
        return logger

    yield make
    for logger, handler in handlers:
        logger.removeHandler(handler)
        handler.close()


def fail(order: int) -> None:
    raise KeyError(f"order {order}")


def log_failure(logger: logging.Logger, order: int) -> None:
    try:
        fail(order)
    except KeyError:
        logger.exception("could not ship order %s", order)


def other_failure(logger: logging.Logger) -> None:
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        logger.exception("division went wrong")


def test_thousand_identical_exceptions_in_a_minute_make_one_mail_with_the_count(
    outbox: Outbox, make_logger: Callable[[AdminEmailHandler], logging.Logger]
) -> None:
    clock = Clock()
    handler = AdminEmailHandler(outbox=outbox, clock=clock, window=60)
    logger = make_logger(handler)
    for order in range(1000):
        clock.now += 0.059  # 1,000 records spread over 59 seconds
        log_failure(logger, order)  # the message text differs; the traceback does not
    handler.send_due()
    assert stored_messages(outbox.engine) == []  # the window is still open: merging
    clock.now += 2
    handler.send_due()
    (data,) = stored_messages(outbox.engine)
    message = assert_well_formed(data)
    assert message["Subject"] == "[Acme] ERROR: could not ship order 0 (1000 times)"
    assert message["From"].addresses[0].addr_spec == "errors@acme.example"
    assert [a.addr_spec for a in message["To"].addresses] == [
        "grace@acme.example",
        "ops@acme.example",
    ]
    assert message["Auto-Submitted"] == "auto-generated"
    body = text_part(message)
    assert "It happened 1000 times" in body
    assert "Traceback (most recent call last)" in body
    assert "KeyError: 'order 0'" in body
    handler.flush()
    assert len(stored_messages(outbox.engine)) == 1  # nothing left over


def test_different_tracebacks_make_different_mails(
    outbox: Outbox, make_logger: Callable[[AdminEmailHandler], logging.Logger]
) -> None:
    handler = AdminEmailHandler(outbox=outbox)
    logger = make_logger(handler)
    for order in range(3):
        log_failure(logger, order)
        other_failure(logger)
    logger.error("no traceback here")
    handler.flush()
    subjects = sorted(assert_well_formed(d)["Subject"] for d in stored_messages(outbox.engine))
    assert subjects == [
        "[Acme] ERROR: could not ship order 0 (3 times)",
        "[Acme] ERROR: division went wrong (3 times)",
        "[Acme] ERROR: no traceback here",
    ]


def test_repeats_and_the_cap_hold_mail_back_without_losing_counts(
    outbox: Outbox, make_logger: Callable[[AdminEmailHandler], logging.Logger]
) -> None:
    clock = Clock()
    handler = AdminEmailHandler(
        outbox=outbox, clock=clock, window=60, repeat_after=3600, max_mails_per_hour=1
    )
    logger = make_logger(handler)
    log_failure(logger, 1)
    other_failure(logger)
    clock.now += 61
    handler.send_due()
    assert len(stored_messages(outbox.engine)) == 1  # the cap: one per hour
    log_failure(logger, 2)  # after its mail: counted, held until repeat_after
    clock.now += 120
    handler.send_due()
    assert len(stored_messages(outbox.engine)) == 1
    handler.close()  # nothing pending is lost at exit
    subjects = sorted(assert_well_formed(d)["Subject"] for d in stored_messages(outbox.engine))
    assert len(subjects) == 3
    assert subjects.count("[Acme] ERROR: could not ship order 1") == 1
    assert "[Acme] ERROR: could not ship order 2" in subjects  # the held repeat, not lost
    assert "[Acme] ERROR: division went wrong" in subjects


def test_a_crash_loop_of_processes_sends_one_mail(outbox: Outbox) -> None:
    # Each "process" starts with a fresh handler, logs the same crash, and exits (closing it).
    logger = logging.getLogger("app.crash_loop")
    logger.propagate = False
    for _ in range(20):
        handler = AdminEmailHandler(outbox=outbox)
        logger.addHandler(handler)
        log_failure(logger, 1)
        logger.removeHandler(handler)
        handler.close()
    assert len(stored_messages(outbox.engine)) == 1


def test_the_timer_sends_when_the_window_closes(
    outbox: Outbox, make_logger: Callable[[AdminEmailHandler], logging.Logger]
) -> None:
    handler = AdminEmailHandler(outbox=outbox, window=0.2, repeat_after=3600)
    logger = make_logger(handler)
    for order in range(5):
        log_failure(logger, order)
    deadline = time.monotonic() + 10
    while not stored_messages(outbox.engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    (data,) = stored_messages(outbox.engine)
    assert "(5 times)" in assert_well_formed(data)["Subject"]


def test_no_admins_no_mail(
    database_url: str, make_logger: Callable[[AdminEmailHandler], logging.Logger]
) -> None:
    box = Outbox(load_settings(environ={}, DATABASE_URL=database_url))
    database.upgrade(box.engine)
    handler = AdminEmailHandler(outbox=box)
    log_failure(make_logger(handler), 1)
    handler.flush()
    assert stored_messages(box.engine) == []
    box.dispose()


def test_a_failing_outbox_keeps_the_mail_for_later(
    outbox: Outbox,
    settings: Settings,
    make_logger: Callable[[AdminEmailHandler], logging.Logger],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays quiet
    broken = Outbox(settings.model_copy(update={"DATABASE_URL": "sqlite:////nonexistent/x.db"}))
    handler = AdminEmailHandler(outbox=broken)
    logger = make_logger(handler)
    log_failure(logger, 1)
    handler.flush()  # fails: kept
    handler._outbox = outbox  # the database is back
    log_failure(logger, 2)
    handler.flush()
    (data,) = stored_messages(outbox.engine)
    assert "(2 times)" in assert_well_formed(data)["Subject"]
    broken.dispose()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        AdminEmailHandler(window=0)
    with pytest.raises(ValueError, match="repeat_after"):
        AdminEmailHandler(window=60, repeat_after=10)

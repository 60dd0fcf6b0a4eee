"""``WalCheckpointer``: with commits no longer checkpointing (``autocheckpoint=False``), its
thread copies the log back into the database file; without it the log only grows."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mailroom.config import load_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.store import BatchItem, Outbox
from mailroom.outbox.wal_checkpoints import WalCheckpointer


def _writer(path: Path) -> Engine:
    engine = database.create_outbox_engine(
        f"sqlite:///{path}", single_writer=True, autocheckpoint=False
    )
    database.upgrade(engine)
    return engine


def _fill(engine: Engine, path: Path) -> None:
    """About 8 MB of messages: 2,000 log pages, twice what a commit would checkpoint at."""
    outbox = Outbox(load_settings(environ={"DATABASE_URL": f"sqlite:///{path}"}), engine=engine)
    body = "All work and no play makes Jack a dull boy.\n" * 90
    for start in range(0, 2000, 500):
        outbox.send_batch(
            [
                BatchItem(Message(to=[f"u{n}@example.com"], subject="s", text=body))
                for n in range(start, start + 500)
            ]
        )


def test_without_the_checkpointer_the_commits_leave_everything_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    engine = _writer(path)
    before = path.stat().st_size
    _fill(engine, path)
    assert path.stat().st_size == before
    assert Path(f"{path}-wal").stat().st_size > 8_000_000
    engine.dispose()


def test_the_checkpointer_copies_the_log_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    engine = _writer(path)
    checkpointer = WalCheckpointer(engine, interval=0.05)
    checkpointer.start()
    try:
        _fill(engine, path)
        deadline = time.monotonic() + 10
        while path.stat().st_size < 8_000_000:
            assert time.monotonic() < deadline, "the log was never checkpointed"
            time.sleep(0.05)
    finally:
        began = time.monotonic()
        checkpointer.close(timeout=5)
        assert time.monotonic() - began < 5
    engine.dispose()


def test_it_does_nothing_for_a_database_in_memory() -> None:
    engine = database.create_outbox_engine("sqlite://")
    checkpointer = WalCheckpointer(engine)
    checkpointer.start()
    assert "mailroom-wal-checkpoints" not in {thread.name for thread in threading.enumerate()}
    checkpointer.close(timeout=1)
    engine.dispose()


def test_a_database_it_cannot_open_is_said_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "outbox.db"
    engine = _writer(path)
    _fill(engine, path)  # the writer's connection stays open: it goes on through the move
    checkpointer = WalCheckpointer(engine, interval=0.05)
    moved = folder.rename(tmp_path / "moved")
    try:
        with caplog.at_level(logging.WARNING, logger="mailroom.outbox.wal_checkpoints"):
            checkpointer.start()
            deadline = time.monotonic() + 10
            while "could not be checkpointed: cannot open" not in caplog.text:
                assert time.monotonic() < deadline, "the failure to open was not said"
                time.sleep(0.05)
        assert caplog.text.count("cannot open") == 1  # said once, not at every interval
        moved.rename(folder)
        deadline = time.monotonic() + 10
        while path.stat().st_size < 8_000_000:
            assert time.monotonic() < deadline, "the log was never checkpointed"
            time.sleep(0.05)
    finally:
        checkpointer.close(timeout=5)
        if not folder.exists():
            moved.rename(folder)
    engine.dispose()


def _write_without_pause(path: Path, total: int) -> int:
    """Commits of 4 KB, one after another, until ``total`` bytes are written; the largest the
    log was seen, in bytes. Between two commits the write lock is free for 0.2 ms, as a group
    commit's writer thread frees it while it builds its next group's rows (a writer that
    never let go of it would starve the restart: SQLite queues nobody)."""
    log = Path(f"{path}-wal")
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    connection.execute("PRAGMA synchronous=NORMAL")  # in the log: as fast as commits come
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE IF NOT EXISTS filler (data BLOB)")
    largest = 0
    try:
        for written in range(0, total, 4096):
            connection.execute("INSERT INTO filler VALUES (?)", (os.urandom(4096),))
            time.sleep(0.0002)
            if written % (256 * 4096) == 0:
                largest = max(largest, log.stat().st_size)
    finally:
        connection.close()
    return max(largest, log.stat().st_size)


@pytest.mark.parametrize(
    ("restart_after_pages", "bounded"),
    [(256, True), (10**9, False)],
    ids=["restarted", "never-restarted"],
)
def test_a_log_written_without_pause_stays_bounded_only_with_restarts(
    tmp_path: Path, restart_after_pages: int, bounded: bool
) -> None:
    """Passive checkpoints alone copy the frames but the log is never begun again while
    commits come without a pause; with restarts past 256 pages (1 MB) it stays within a few
    megabytes while 32 MB go through it."""
    path = tmp_path / "outbox.db"
    engine = _writer(path)
    checkpointer = WalCheckpointer(engine, interval=0.02, restart_after_pages=restart_after_pages)
    checkpointer.start()
    try:
        largest = _write_without_pause(path, 32 * 1024 * 1024)
    finally:
        checkpointer.close(timeout=5)
        engine.dispose()
    if bounded:
        assert checkpointer.restarts >= 1
        assert largest < 8 * 1024 * 1024, largest
    else:
        assert checkpointer.restarts == 0
        assert largest > 24 * 1024 * 1024, largest

"""``WalCheckpointer``: with commits no longer checkpointing (``autocheckpoint=False``), its
thread copies the log back into the database file; without it the log only grows."""

from __future__ import annotations

import logging
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

"""The operator's log files: one JSON line per attempt, and tracebacks in the errors log."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.config import load_settings
from mailroom.logs import attach_log_files


@pytest.fixture
def log_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    send, errors = tmp_path / "send.log", tmp_path / "errors.log"
    settings = load_settings(environ={"SEND_LOG_FILE": str(send), "ERROR_LOG_FILE": str(errors)})
    attach_log_files(settings)
    handlers = attach_log_files(settings)  # twice, as a re-run in one process would
    yield send, errors
    for handler in handlers:
        for name in ("mailroom", "mailroom.sendlog"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def test_send_log_is_one_json_object_per_line(log_files: tuple[Path, Path]) -> None:
    send, _ = log_files
    attempt = {"message_pk": 7, "recipient": "ada@example.com", "outcome": "sent", "code": 250}
    logging.getLogger("mailroom.sendlog").info("message 7 sent", extra={"attempt": attempt})
    [line] = send.read_text().splitlines()
    logged = json.loads(line)
    assert {k: logged[k] for k in attempt} == attempt
    assert "logged_at" in logged


def test_errors_log_keeps_tracebacks(log_files: tuple[Path, Path]) -> None:
    _, errors = log_files
    logger = logging.getLogger("mailroom.delivery.worker")
    try:
        raise RuntimeError("the relay's reply could not be parsed")
    except RuntimeError:
        logger.exception("unexpected error sending message 12")
    logger.warning("a warning is not an error")
    text = errors.read_text()
    assert "unexpected error sending message 12" in text
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: the relay's reply could not be parsed" in text
    assert "a warning is not an error" not in text
    assert text.count("unexpected error sending message 12") == 1


def test_log_files_are_created_for_their_owner_only(tmp_path: Path) -> None:
    # They name recipients and can quote messages (password-reset links among them).
    send, errors = tmp_path / "send.log", tmp_path / "errors.log"
    settings = load_settings(environ={"SEND_LOG_FILE": str(send), "ERROR_LOG_FILE": str(errors)})
    old = os.umask(0o022)
    try:
        handlers = attach_log_files(settings)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(send.stat().st_mode) == 0o600
        assert stat.S_IMODE(errors.stat().st_mode) == 0o600
    finally:
        for handler in handlers:
            for name in ("mailroom", "mailroom.sendlog"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()

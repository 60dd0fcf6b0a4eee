"""Log files for operators: the send log (one JSON line per attempt) and the errors log.

Nothing here runs on import; the ``mailroom worker`` command calls :func:`attach_log_files`.
"""

from __future__ import annotations

import json
import logging
import os
from io import TextIOWrapper
from pathlib import Path
from typing import Any, cast

from mailroom.config import Settings

__all__ = ["JsonLinesFormatter", "attach_log_files"]


class JsonLinesFormatter(logging.Formatter):
    """Formats a send-log record (its ``attempt`` field) as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        attempt: dict[str, Any] = dict(getattr(record, "attempt", {}))
        attempt.setdefault("logged_at", record.created)
        return json.dumps(attempt, ensure_ascii=False, separators=(",", ":"))


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class _LogFileHandler(logging.FileHandler):
    """A file handler this module attached, so attaching again can replace it.

    It creates its file readable by its owner only (0600): the send log names every recipient
    and the errors log can quote a message, password-reset links included. An existing file
    keeps the mode it has.
    """

    def _open(self) -> TextIOWrapper:
        stream = open(  # noqa: SIM115 - the handler owns and closes the stream
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=_owner_only,
        )
        return cast(TextIOWrapper, stream)  # text mode: "a" or "w", never binary


def _replace(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in [h for h in logger.handlers if isinstance(h, _LogFileHandler)]:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)


def attach_log_files(settings: Settings) -> list[logging.Handler]:
    """Attach file handlers for ``SEND_LOG_FILE`` and ``ERROR_LOG_FILE``; return them.

    Calling it again replaces the handlers it attached before, so no line is written twice.
    """
    handlers: list[logging.Handler] = []
    if settings.SEND_LOG_FILE:
        Path(settings.SEND_LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
        send = _LogFileHandler(settings.SEND_LOG_FILE, encoding="utf-8")
        send.setFormatter(JsonLinesFormatter())
        send_logger = logging.getLogger("mailroom.sendlog")
        send_logger.setLevel(logging.INFO)
        _replace(send_logger, send)
        handlers.append(send)
    if settings.ERROR_LOG_FILE:
        Path(settings.ERROR_LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
        errors = _LogFileHandler(settings.ERROR_LOG_FILE, encoding="utf-8")
        errors.setLevel(logging.ERROR)
        errors.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        _replace(logging.getLogger("mailroom"), errors)
        handlers.append(errors)
    return handlers

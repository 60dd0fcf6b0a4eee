"""A :class:`logging.Handler` that mails errors to ``ADMINS`` through the outbox.

Configure it like Django's ``AdminEmailHandler``::

    logging.getLogger().addHandler(mailroom.AdminEmailHandler())

Mail goes From ``SERVER_EMAIL`` with ``EMAIL_SUBJECT_PREFIX``, committed to the outbox like any
other message (so it survives a relay outage), marked ``Auto-Submitted: auto-generated``.

Flood control, because an error in a hot path or a crash loop must not bury the admins:

- **merging**: records with the same *signature* (logger, message template, exception type
  and the traceback's frames — not the message text, which often holds ids) within ``window``
  seconds make one mail, sent when the window closes, saying how many times it happened;
- **repeats**: after a signature was mailed, it is mailed again at most once per
  ``repeat_after`` seconds, with the count of everything in between (held in memory, never
  dropped);
- **processes**: each mail's idempotency key holds the signature, the ``repeat_after``
  period it falls in and how many mails of it this process sent in that period, so a crash
  loop of short-lived processes, each sending the same traceback at exit, makes one mail per
  period;
- **a cap**: at most ``max_mails_per_hour`` mails per process, whatever the signatures;
  the rest are held until the cap allows, or ``close()``.

Pending mail is sent when the window closes (a timer thread), on :meth:`flush`, and on
:meth:`close` (``logging.shutdown`` calls both at interpreter exit).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from mailroom.compose import headers
from mailroom.message import Message
from mailroom.outbox.store import Outbox

__all__ = ["AdminEmailHandler"]

_MAX_TRACEBACK_CHARS = 50_000  # the end of a traceback is the useful part; keep that
_MAX_SUBJECT_CHARS = 120
_MAX_PENDING_SIGNATURES = 1000
_HOUR = 3600.0


@dataclass
class _Aggregate:
    signature: str
    level: str
    logger_name: str
    summary: str
    details: str
    count: int
    first_at: float  # wall-clock seconds, for the mail
    last_at: float
    opened: float  # handler clock, for the window


def _frames(tb: TracebackType | None) -> list[tuple[str, str, int]]:
    return [(f.filename, f.name, f.lineno or 0) for f in traceback.extract_tb(tb)]


def signature_of(record: logging.LogRecord) -> str:
    """What makes two records "the same error": where it was logged, the message template
    (``record.msg``, before arguments), and the exception's type and frames."""
    parts: list[str] = [record.name, record.levelname, str(record.msg), record.pathname]
    parts.append(str(record.lineno))
    if record.exc_info and record.exc_info[0] is not None:
        exc_type, _, tb = record.exc_info
        parts.append(f"{exc_type.__module__}.{exc_type.__qualname__}")
        parts.extend(f"{name}:{func}:{line}" for name, func, line in _frames(tb))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


class AdminEmailHandler(logging.Handler):
    """Mails log records (ERROR and above by default) to ``ADMINS``. See the module docs."""

    def __init__(
        self,
        level: int = logging.ERROR,
        *,
        outbox: Outbox | None = None,
        window: float = 60.0,
        repeat_after: float = _HOUR,
        max_mails_per_hour: int = 20,
        stream: str = "transactional",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(level)
        if window <= 0 or repeat_after < window or max_mails_per_hour < 1:
            raise ValueError(
                "AdminEmailHandler: window must be positive, repeat_after at least window, "
                "and max_mails_per_hour at least 1"
            )
        self._outbox = outbox
        self.window = window
        self.repeat_after = repeat_after
        self.max_mails_per_hour = max_mails_per_hour
        self.stream = stream
        self._clock = clock
        self._pending: dict[str, _Aggregate] = {}
        self._last_mailed: dict[str, float] = {}
        self._mailed_at: deque[float] = deque()
        self._sequence: dict[str, tuple[int, int]] = {}
        self._overflow = 0  # records beyond _MAX_PENDING_SIGNATURES, reported in the next mail
        self._state = threading.Lock()
        self._sending = threading.local()
        self._timer: threading.Timer | None = None

    # -- collecting -----------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record into its signature's pending mail; never sends inline."""
        if getattr(self._sending, "active", False):
            return  # a log line from our own sending: mailing it could loop forever
        try:
            signature = signature_of(record)
            now = self._clock()
            with self._state:
                aggregate = self._pending.get(signature)
                if aggregate is not None:
                    aggregate.count += 1
                    aggregate.last_at = record.created
                elif len(self._pending) >= _MAX_PENDING_SIGNATURES:
                    self._overflow += 1
                else:
                    self._pending[signature] = self._aggregate(record, signature, now)
            self._schedule()
        except Exception:  # a log handler must never raise into the caller
            self.handleError(record)

    def _aggregate(self, record: logging.LogRecord, signature: str, now: float) -> _Aggregate:
        message = record.getMessage()
        details = message
        if record.exc_info:
            details += "\n\n" + "".join(traceback.format_exception(*record.exc_info))
        elif record.stack_info:
            details += "\n\n" + record.stack_info
        if len(details) > _MAX_TRACEBACK_CHARS:
            details = "…\n" + details[-_MAX_TRACEBACK_CHARS:]
        first_line = " ".join((message.splitlines() or [""])[0].split())
        if len(first_line) > _MAX_SUBJECT_CHARS:
            first_line = first_line[: _MAX_SUBJECT_CHARS - 1] + "…"
        return _Aggregate(
            signature=signature,
            level=record.levelname,
            logger_name=record.name,
            summary=first_line,
            details=details,
            count=1,
            first_at=record.created,
            last_at=record.created,
            opened=now,
        )

    # -- sending --------------------------------------------------------------------------

    def _due(self, now: float, *, force: bool) -> list[_Aggregate]:
        """Take the aggregates whose mail may go now (under the lock)."""
        while self._mailed_at and now - self._mailed_at[0] >= _HOUR:
            self._mailed_at.popleft()
        due: list[_Aggregate] = []
        for signature, aggregate in list(self._pending.items()):
            if not force:
                if now - aggregate.opened < self.window:
                    continue  # still merging
                last = self._last_mailed.get(signature)
                if last is not None and now - last < self.repeat_after:
                    continue  # mailed recently; keep counting
                if len(self._mailed_at) >= self.max_mails_per_hour:
                    continue  # the cap; held, not dropped
            due.append(self._pending.pop(signature))
            self._last_mailed[signature] = now
            self._mailed_at.append(now)
        return due

    def _send_due(self, *, force: bool) -> None:
        with self._state:
            due = self._due(self._clock(), force=force)
            overflow = 0
            if due:  # reported in the first mail that goes
                overflow, self._overflow = self._overflow, 0
        failed: list[_Aggregate] = []
        for position, aggregate in enumerate(due):
            try:
                self._send(aggregate, overflow if position == 0 else 0)
            except Exception:  # keep it for the next flush; report on stderr
                failed.append(aggregate)
                self.handleError(_failure_record(aggregate))
        if failed:
            with self._state:
                for aggregate in failed:
                    self._pending.setdefault(aggregate.signature, aggregate)
                    self._last_mailed.pop(aggregate.signature, None)

    def _send(self, aggregate: _Aggregate, overflow: int) -> None:
        outbox = self._outbox
        if outbox is None:
            from mailroom.sending import default_outbox  # noqa: PLC0415 - read settings late

            outbox = default_outbox()
        settings = outbox.settings
        if not settings.ADMINS:
            return  # like Django: no admins, no mail
        times = "once" if aggregate.count == 1 else f"{aggregate.count} times"
        subject = f"{aggregate.level}: {aggregate.summary}"
        if aggregate.count > 1:
            subject += f" ({times})"
        first = datetime.fromtimestamp(aggregate.first_at, UTC).isoformat(timespec="seconds")
        last = datetime.fromtimestamp(aggregate.last_at, UTC).isoformat(timespec="seconds")
        lines = [
            f"{aggregate.level} in logger {aggregate.logger_name} on {socket.gethostname()} "
            f"(process {os.getpid()}).",
            f"It happened {times}, first at {first}, last at {last} (UTC).",
        ]
        if overflow:
            lines.append(
                f"{overflow} more records were not kept: too many different errors at once."
            )
        text = "\n".join(lines) + "\n\n" + aggregate.details + "\n"
        period = int(time.time() // self.repeat_after)
        # The n-th mail of this signature in this period, from this process: a fresh process
        # in a crash loop starts at 0 again and so repeats the key of the mail already sent.
        with self._state:
            last_period, sent = self._sequence.get(aggregate.signature, (period, 0))
            number = sent if last_period == period else 0
            self._sequence[aggregate.signature] = (period, number + 1)
        self._sending.active = True
        try:
            outbox.send(
                Message(
                    to=list(settings.ADMINS),
                    subject=headers.prefixed_subject(settings.EMAIL_SUBJECT_PREFIX, subject),
                    text=text,
                    from_email=settings.server_email,
                    headers=headers.auto_submitted(),
                    metadata={"error_signature": aggregate.signature, "count": aggregate.count},
                ),
                stream=self.stream,
                idempotency_key=f"mailroom-error:{aggregate.signature}:{period}:{number}",
            )
        finally:
            self._sending.active = False

    def _schedule(self) -> None:
        """Make sure a timer will send what is pending once its window has closed."""
        with self._state:
            if self._timer is not None or not self._pending:
                return
            timer = threading.Timer(self.window, self._on_timer)
            timer.daemon = True  # never keeps a process alive; close() sends what is left
            self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        with self._state:
            self._timer = None
        self.send_due()
        self._schedule()

    def send_due(self) -> None:
        """Send the mails whose window has closed and that the limits allow (the timer's job)."""
        self._send_due(force=False)

    def flush(self) -> None:
        """Send every pending mail now, each with its count so far."""
        self._send_due(force=True)

    def close(self) -> None:
        """Send what is pending and stop the timer."""
        with self._state:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            self.flush()
        finally:
            super().close()


def _failure_record(aggregate: _Aggregate) -> logging.LogRecord:
    return logging.LogRecord(
        aggregate.logger_name,
        logging.ERROR,
        __file__,
        0,
        "could not enqueue the error mail for: %s",
        (aggregate.summary,),
        None,
    )

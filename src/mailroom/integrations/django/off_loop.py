"""Sending mail from async code: Django's mail API called on a thread whose event loop is
running — an ``async def`` view, any coroutine.

Django refuses database work there (``SynchronousOnlyOperation``, raised by ``async_unsafe``
on its connections): a query would block every coroutine of the loop, and Django's connections
are per thread, so the loop thread's one connection would be shared by every coroutine on it,
their transactions interleaved. Django has no async transactions either, so a send from async
code has no ``atomic`` block to join.

So the commit runs on a thread made for it, with that thread's own Django connection, which
nothing else uses; the caller's thread waits for it, up to ``MAILROOM["ASYNC_SEND_TIMEOUT"]``
seconds, and gets what sync code gets: the count, ``message.mailroom_status``, or the error.
Waiting blocks the loop for as long as the commit takes — the trade Django's SMTP backend makes
for its network round trips. Async code that must not block calls
``await sync_to_async(send_mail)(...)``, which runs the whole send on Django's own thread.

The thread closes its Django connections before it ends (``connections.close_all()``, as
Django does at the end of a request), so a connection per send is opened and closed again:
none outlives its send. A thread per send rather than a pool of them: starting one costs less
than opening the connection it needs, nothing carries over from one send to the next, and a
commit stuck past its timeout holds its own thread only, never a later send. The caller's
context (``contextvars``: the active language and timezone under ASGI) is copied into the
thread, as ``sync_to_async`` copies it.

``DJANGO_ALLOW_ASYNC_UNSAFE``, set by the project, lets the loop thread's own connection be
used, as Django does: then the send runs as in sync code, on that connection and inside its
``atomic`` block if one is open (Jupyter notebooks, some test setups). Mailroom never sets it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from django.db import connections

from mailroom.errors import EnqueueTimeoutError

__all__ = ["THREAD_NAME", "in_async_context", "run_off_loop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_NAME = "mailroom-django-commit"
"""The name of each commit thread (seen in a thread dump, and by the tests)."""


def in_async_context() -> bool:
    """What Django's ``async_unsafe`` checks before it refuses a query: an event loop running
    in this thread, and no ``DJANGO_ALLOW_ASYNC_UNSAFE``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")


@dataclass
class _Outcome(Generic[T]):
    """What the thread hands back: its value (a list, as the value may be ``None``), or what
    it raised; ``finished`` once either is in, ``abandoned`` once the caller stopped waiting
    (both under ``lock``, so exactly one of the two reports the outcome)."""

    values: list[T] = field(default_factory=list)
    error: BaseException | None = None
    finished: bool = False
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_off_loop(work: Callable[[], T], *, timeout: float, what: str) -> T:
    """``work()`` on a new thread, with Django connections of its own (closed when it is
    done); its value, or its exception raised here. After ``timeout`` seconds an
    :class:`EnqueueTimeoutError` about ``what`` is raised: the thread, which cannot be
    stopped, goes on, and logs how its commit ended when it does."""
    outcome: _Outcome[T] = _Outcome()
    context = contextvars.copy_context()
    started = time.monotonic()

    def run() -> None:
        try:
            outcome.values.append(context.run(work))
        except BaseException as exc:  # handed to the caller, who raises it
            outcome.error = exc
        finally:
            with outcome.lock:
                outcome.finished = True
                abandoned = outcome.abandoned
            try:
                connections.close_all()  # this thread's only: Django's connections are per thread
            except Exception:  # the outcome is known; a connection that fails to close is not it
                logger.warning("could not close a Django connection after a send", exc_info=True)
            if abandoned:
                _report_late(what, outcome.error, time.monotonic() - started)

    # A daemon: a commit stuck past its timeout must not also hold up the process's exit.
    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    thread.join(timeout)
    with outcome.lock:
        outcome.abandoned = not outcome.finished
    if outcome.abandoned:
        raise EnqueueTimeoutError(
            f"the commit of {what}, sent from async code, took longer than "
            f'MAILROOM["ASYNC_SEND_TIMEOUT"] ({timeout:g} s); it goes on, so whether the '
            "messages are queued is not known (how it ends is logged)"
        )
    if outcome.error is not None:
        raise outcome.error
    return outcome.values[0]


def _report_late(what: str, error: BaseException | None, seconds: float) -> None:
    """How a commit the caller gave up on ended: the log is the only place it can be told."""
    if error is None:
        logger.warning(
            "the commit of %s, given up on by its caller, completed after %.1f s: queued",
            what,
            seconds,
        )
        return
    logger.error(
        "the commit of %s, given up on by its caller, failed after %.1f s: not queued",
        what,
        seconds,
        exc_info=error,
    )

"""Running workers: one in this process, or several side by side.

One worker process is bound by one core (Python holds the GIL while it builds commands and
rows). ``WORKER_PROCESSES`` (or ``mailroom worker --processes``) starts that many workers as
child processes under this one, which forwards SIGTERM and SIGINT to them and waits for them
all. They share nothing but the outbox: leases keep them from sending a message twice.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from types import FrameType

from mailroom.config import Settings
from mailroom.delivery import loop
from mailroom.delivery.companions import CompanionFactory
from mailroom.delivery.worker import Worker, WorkerStats

__all__ = ["run_worker", "run_worker_processes"]

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PARENT_CHECK_EVERY = 1.0  # seconds


def run_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    once: bool = False,
    supervised: bool = False,
    companions: CompanionFactory | None = None,
) -> tuple[str, WorkerStats]:
    """Run one worker in this process until it is stopped (or, ``once``, the outbox is
    drained); SIGTERM and SIGINT stop it gracefully. Returns its name and what it did.

    ``supervised``: this is a child of :func:`run_worker_processes`; if that parent dies
    without passing a signal on (SIGKILL, say), stop gracefully instead of running on alone.
    ``companions``: work to run beside the sending (see :mod:`mailroom.delivery.companions`).
    """
    worker = Worker(settings, concurrency=concurrency, once=once, companions=companions)
    parent = os.getppid()

    async def watch_parent() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(_PARENT_CHECK_EVERY)
        logger.warning("the supervising process %s is gone; stopping", parent)
        worker.stop()

    async def main() -> WorkerStats:
        running = asyncio.get_running_loop()
        for signum in _STOP_SIGNALS:
            running.add_signal_handler(signum, worker.stop)
        watcher = asyncio.create_task(watch_parent()) if supervised else None
        try:
            return await worker.run()
        finally:
            if watcher is not None:
                watcher.cancel()

    return worker.name, loop.run(main(), settings.WORKER_EVENT_LOOP)


def run_worker_processes(
    settings: Settings,
    processes: int,
    *,
    concurrency: int | None = None,
    once: bool = False,
    child: Callable[[Settings, int | None, bool], None],
) -> int:
    """Start ``processes`` children running ``child(settings, concurrency, once)``; wait for
    them all. Returns how many ended with an error."""
    # "spawn", not fork: a fork would copy this process's database connections and threads.
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=child, args=(settings, concurrency, once), name=f"mailroom-worker-{n}"
        )
        for n in range(processes)
    ]

    stop_signal: list[int] = []  # the signal that asked us to stop, once one did

    def forward(signum: int, _frame: FrameType | None) -> None:
        stop_signal[:] = [signum]
        for process in children:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in _STOP_SIGNALS}
    try:
        for process in children:
            process.start()
            if stop_signal and process.pid is not None:
                # The stop came while the children were starting: this one was not there
                # to be told.
                os.kill(process.pid, stop_signal[0])
        for process in children:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # A child still starting up when the stop came is ended by the signal itself, before it
    # could claim anything: that is a clean stop, not a failure.
    clean = {0, -stop_signal[0]} if stop_signal else {0}
    failed = [p for p in children if p.exitcode not in clean]
    for process in failed:
        logger.error("worker process %s ended with exit code %s", process.pid, process.exitcode)
    return len(failed)

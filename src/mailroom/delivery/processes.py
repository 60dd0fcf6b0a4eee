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
from mailroom.delivery.worker import Worker, WorkerStats

__all__ = ["run_worker", "run_worker_processes"]

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_worker(
    settings: Settings, *, concurrency: int | None = None, once: bool = False
) -> tuple[str, WorkerStats]:
    """Run one worker in this process until it is stopped (or, ``once``, the outbox is
    drained); SIGTERM and SIGINT stop it gracefully. Returns its name and what it did."""
    worker = Worker(settings, concurrency=concurrency, once=once)

    async def main() -> WorkerStats:
        running = asyncio.get_running_loop()
        for signum in _STOP_SIGNALS:
            running.add_signal_handler(signum, worker.stop)
        return await worker.run()

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

    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in children:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in _STOP_SIGNALS}
    try:
        for process in children:
            process.start()
        for process in children:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [p for p in children if p.exitcode != 0]
    for process in failed:
        logger.error("worker process %s ended with exit code %s", process.pid, process.exitcode)
    return len(failed)

"""Running the service: the app on uvicorn with an embedded delivery worker, and its stop.

Stopping (SIGTERM or SIGINT): uvicorn stops accepting, finishes the requests in progress (for
at most :data:`HTTP_GRACE` seconds), then the lifespan stops the worker gracefully (see
:mod:`mailroom.web.embedded_worker`) and writes the last tracking hits. A second signal
(either one) ends both graces at once, the app's shutdown still running. Every step is
bounded; a watchdog started by the signal ends the process if the whole stop ever takes longer
than all the bounds together.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from starlette.types import Lifespan
from uvicorn.lifespan.on import LifespanOn

from mailroom.campaigns.runner import worker_companions
from mailroom.config import Settings
from mailroom.delivery.worker import Worker
from mailroom.web.app import create_app
from mailroom.web.embedded_worker import EmbeddedWorker

__all__ = ["HTTP_GRACE", "ServiceRun", "run_service"]

logger = logging.getLogger(__name__)

HTTP_GRACE = 10
"""Seconds the requests in progress get to finish once a stop is asked for."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class ServiceRun:
    """How a run ended: whether it served at all, the embedded worker's error if it failed,
    and its one-line summary if it ran."""

    started: bool
    worker_error: BaseException | None
    worker_summary: str | None


SWITCH_INTERVAL = 0.001
"""Seconds a thread runs before another that waits for the GIL gets it."""


def run_service(
    settings: Settings,
    listener: socket.socket,
    *,
    root_path: str,
    embedded_worker: bool,
    on_listening: Callable[[], None],
) -> ServiceRun:
    """Serve on ``listener`` until stopped; ``on_listening`` runs once the app is made, just
    before serving (the command prints its start lines there)."""
    server: _Server | None = None

    def worker_failed(_error: BaseException) -> None:
        if server is not None:
            server.stop()

    embedded = (
        EmbeddedWorker(Worker(settings, companions=worker_companions), on_failure=worker_failed)
        if embedded_worker
        else None
    )
    app = create_app(settings, lifespan=_lifespan(embedded))
    config = uvicorn.Config(
        app,
        lifespan="on",
        loop=settings.WORKER_EVENT_LOOP,  # auto: uvloop where installed
        http="auto",  # httptools where installed
        log_config=None,  # mailroom's own logging (-v shows uvicorn's INFO lines)
        server_header=False,
        root_path=root_path,
        # Forwarded headers are believed only from the proxies listed; none by default.
        proxy_headers=bool(settings.FORWARDED_ALLOW_IPS),
        forwarded_allow_ips=list(settings.FORWARDED_ALLOW_IPS),
        timeout_graceful_shutdown=HTTP_GRACE,
    )
    server = _Server(config, hard_cap=_hard_cap(settings), embedded=embedded)
    on_listening()
    server.run(sockets=[listener])
    summary = None
    if embedded is not None and embedded.stats is not None:
        stats = embedded.stats
        summary = (
            f"worker {embedded.worker.name}: sent {stats.sent}, deferred {stats.deferred}, "
            f"failed {stats.failed}, paused {stats.paused}, released {stats.released}, "
            f"suppressed {stats.suppressed}"
        )
    return ServiceRun(
        started=server.started,
        worker_error=None if embedded is None else embedded.error,
        worker_summary=summary,
    )


def _lifespan(embedded: EmbeddedWorker | None) -> Lifespan[FastAPI]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What is alive once the app is made (modules, routes, models: several hundred
        # thousand objects) lives as long as the process: frozen out of the collector, whose
        # full passes, set off by the objects a large request makes, no longer walk it all
        # (they took a tenth of the time of a run of batch sends).
        gc.freeze()
        # The thread holding SQLite's write lock lets go of the GIL in every statement and
        # waits to win it back from the request threads busy in Python: by default up to
        # 5 ms a time, with the lock held. 1 ms took a tenth off a batch send.
        sys.setswitchinterval(SWITCH_INTERVAL)
        if embedded is not None:
            embedded.start()
        try:
            yield
        finally:
            if embedded is not None:
                await embedded.stop()

    return lifespan


def _hard_cap(settings: Settings) -> float:
    """Seconds after a stop signal past which the process ends whatever it is waiting for:
    every bounded step of the stop, with a margin."""
    return HTTP_GRACE + EmbeddedWorker.longest_stop(settings) + 15.0


class _Server(uvicorn.Server):
    """uvicorn's server, with four changes for a service: a stop signal ends the process with
    exit status 0 once the stop is done (uvicorn raises the signal again, which would end it
    by the signal); a second one (SIGTERM or SIGINT alike) ends the graces at once, the
    requests' and the worker's, as for ``mailroom worker``; the app's shutdown (the worker's
    stop, the tracking hits' last write) runs even then, where uvicorn skips it; and a
    watchdog bounds the whole stop."""

    def __init__(
        self, config: uvicorn.Config, *, hard_cap: float, embedded: EmbeddedWorker | None
    ) -> None:
        super().__init__(config)
        self._hard_cap = hard_cap
        self.embedded = embedded
        self._watchdog: threading.Timer | None = None

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in _STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def handle_exit(self, sig: int, frame: object) -> None:
        if self.should_exit:
            logger.info("signal %s again: ending the graces", sig)
            self.force_exit = True  # uvicorn stops waiting for the requests in progress
            if self.embedded is not None:
                self.embedded.hurry()
        else:
            logger.info("signal %s: stopping", sig)
        self.stop()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        lifespan = self.lifespan
        if (
            self.force_exit
            and isinstance(lifespan, LifespanOn)
            and not lifespan.shutdown_event.is_set()
        ):
            # uvicorn skips the app's shutdown once hurried; every step of it is bounded.
            await lifespan.shutdown()

    def stop(self) -> None:
        """Stop serving (as a signal does), and start the watchdog."""
        self.should_exit = True
        if self._watchdog is None:
            self._watchdog = threading.Timer(self._hard_cap, self._give_up)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _give_up(self) -> None:
        sys.stderr.write(
            f"mailroom: error: serve did not stop within {self._hard_cap:.0f} s; exiting now "
            "(messages being sent keep their lease and are sent again when it runs out)\n"
        )
        sys.stderr.flush()
        os._exit(1)

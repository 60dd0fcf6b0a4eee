"""The life of a throwaway TCP server in a test: listen on a free port, serve each connection
in a task of its own, and at the end close the listener and cancel what is still serving.

Subclasses say what to do with one connection (:meth:`LocalServer.connection`) and call
:meth:`LocalServer.listen` from their ``__aenter__``.
"""

from __future__ import annotations

import asyncio
from typing import Any


class LocalServer:
    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(self, **start_server: Any) -> None:
        """``asyncio.start_server`` with these arguments; ``port`` is where it listens."""
        self._server = await asyncio.start_server(self._serve, **start_server)
        self.port = self._server.sockets[0].getsockname()[1]

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.connection(reader, writer)
        except asyncio.CancelledError:
            # The test is over. Ending normally, not cancelled: asyncio's stream protocol
            # (3.11) reports a cancelled connection task as an error in a callback.
            return
        finally:
            writer.close()

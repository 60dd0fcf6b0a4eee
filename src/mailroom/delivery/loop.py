"""Which event loop the worker runs on.

uvloop (libuv underneath) does the same work as asyncio's own loop with much less Python per
socket event, and a worker is mostly socket events; it is used wherever it is installed,
unless ``WORKER_EVENT_LOOP`` says otherwise.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["EVENT_LOOPS", "loop_factory", "run"]

T = TypeVar("T")

EVENT_LOOPS = ("auto", "asyncio", "uvloop")
"""The values of ``WORKER_EVENT_LOOP``."""


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``choice``; ``None`` means asyncio's default loop."""
    if choice == "asyncio":
        return None
    if choice == "auto" and importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop  # noqa: PLC0415 - optional: only where it is installed and wanted

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)

"""Work a worker runs beside its sending, each in a thread of its own: a campaign's fan-out and
batches (:func:`mailroom.campaigns.runner.worker_companions`).

The delivery room knows only this shape; whoever starts a worker (the ``mailroom worker``
command, ``serve``, Django's ``mailroom_worker``) hands it the factory, so the worker imports
nothing of the rooms above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy import Engine

from mailroom.config import Settings

__all__ = ["Companion", "CompanionFactory"]


class Companion(Protocol):
    """Started with the worker, stopped before it gives its queue back."""

    @property
    def idle(self) -> bool:
        """Nothing to do now: a ``--once`` run may end."""

    def start(self) -> None: ...

    def stop(self, timeout: float) -> bool:
        """Stop after the piece of work under way; whether it ended within ``timeout``."""


CompanionFactory = Callable[[Settings, Engine], Sequence[Companion]]
"""Given the worker's settings and engine, the companions to run beside it."""

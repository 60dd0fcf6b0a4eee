"""The one interface every transport implements, and what a send returns.

A transport has one method to write, :meth:`Transport.send`, which delivers one
:class:`~mailroom.message.Envelope` or raises a :class:`~mailroom.errors.DeliveryError`.
``open`` and ``close`` are there for transports that hold a connection; ``async with``
calls them.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Self

from mailroom.errors import DeliveryError
from mailroom.message import Envelope

__all__ = ["SendResult", "Transport"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one envelope that was at least partly accepted.

    ``refused`` holds the recipients the relay would not take, each with its own error,
    when others were accepted. ``location`` says where a development transport put it.
    ``reply`` is the relay's answer to the content; when the message took several
    transactions, ``replies`` gives each accepted recipient the answer to its own.
    """

    message_id: str
    accepted: tuple[str, ...]
    transport: str
    reply: str = ""
    refused: Mapping[str, DeliveryError] = field(default_factory=dict)
    location: str = ""
    replies: Mapping[str, str] = field(default_factory=dict)


class Transport(abc.ABC):
    """Delivers envelopes somewhere. Subclasses implement :meth:`send`."""

    name: ClassVar[str]

    async def open(self) -> None:  # noqa: B027 - a no-op unless the transport holds a connection
        """Prepare to send (connect); called by ``async with`` and by ``send`` when needed."""

    async def close(self) -> None:  # noqa: B027 - as above
        """Release what :meth:`open` took."""

    @abc.abstractmethod
    async def send(self, envelope: Envelope) -> SendResult:
        """Deliver one envelope, or raise a :class:`~mailroom.errors.DeliveryError`."""

    def describe(self) -> str:
        """A line for people: where this transport sends. Never includes a secret."""
        return self.name

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

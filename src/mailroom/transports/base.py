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
from mailroom.transports.smtp_replies import Reply

__all__ = ["SendProgress", "SendResult", "Transport"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one envelope that was at least partly accepted.

    ``refused`` holds the recipients the relay would not take, each with its own error,
    when others were accepted. ``location`` says where a development transport put it.
    ``reply`` is the relay's answer to the content (``None`` from a transport that has no
    relay to answer: console, file, memory, null); when the message took several
    transactions, ``replies`` gives each accepted recipient the answer to its own.
    """

    message_id: str
    accepted: tuple[str, ...]
    transport: str
    reply: Reply | None = None
    refused: Mapping[str, DeliveryError] = field(default_factory=dict)
    location: str = ""
    replies: Mapping[str, Reply] = field(default_factory=dict)


@dataclass(slots=True)
class SendProgress:
    """What a send has delivered so far, kept up to date by the transport as it goes.

    A delivery of several transactions (a relay's recipient limit) can be cut short after some
    of them were accepted: a worker shutting down, or a send reaching the end of its lease. The
    recipients in ``accepted`` then have the message and must not be sent it again; the caller
    passes a fresh one to :meth:`Transport.send` and reads it when the send was cancelled.
    ``replies`` gives each accepted recipient the relay's answer to its transaction's content;
    ``refused`` the recipients refused on their own in transactions that completed.
    ``unanswered`` holds the recipients of a transaction whose final dot had been written when
    the send was cancelled, its reply not yet in: the relay may have taken the message for
    them (RFC 5321 §4.1.1.4), so sending it again may deliver it twice.
    """

    accepted: list[str] = field(default_factory=list)
    replies: dict[str, Reply] = field(default_factory=dict)
    refused: dict[str, DeliveryError] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)


class Transport(abc.ABC):
    """Delivers envelopes somewhere. Subclasses implement :meth:`send`."""

    name: ClassVar[str]

    async def open(self) -> None:  # noqa: B027 - a no-op unless the transport holds a connection
        """Prepare to send (connect); called by ``async with`` and by ``send`` when needed."""

    async def close(self) -> None:  # noqa: B027 - as above
        """Release what :meth:`open` took."""

    @abc.abstractmethod
    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        """Deliver one envelope, or raise a :class:`~mailroom.errors.DeliveryError`.

        A transport that can deliver to part of the recipients before the rest (SMTP, in
        several transactions) records each part in ``progress`` as the relay accepts it."""

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

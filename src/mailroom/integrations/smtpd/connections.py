"""How many connections the submission port holds at once, and the set of them a stop closes.

``SMTPD_MAX_CONNECTIONS`` bounds them all, and ``SMTPD_MAX_CONNECTIONS_PER_CLIENT`` those
from one address (Postfix's ``smtpd_client_connection_count_limit``): without them any client
could open sockets until the process ran out of file descriptors, and hold them (an idle one
lasts five minutes). A connection over a limit is told ``421 4.7.0`` in place of the greeting
and closed (RFC 5321 §3.1: a server may refuse a session with 421); it was never counted.
One that is let in is counted from then until it closes, however it ends.

The trusted networks are exempt from the per-client limit, never from the total: as Postfix
exempts ``$mynetworks`` by default (``smtpd_client_event_limit_exceptions``). They are the
operator's own hosts, already let submit without AUTH, and often one address stands for many
(an application server with a pool of connections, a NAT gateway).

Refusals come in bursts (a client's pool that grew too big, a flood): a warning is logged at
the first refusal of a burst, and not again for that limit until :data:`BURST_GAP` seconds
pass without one, so a flood cannot flood the log too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterator
from enum import StrEnum
from typing import Generic, TypeVar

from mailroom.integrations.smtpd.peers import client_address

__all__ = ["BURST_GAP", "ConnectionLimits", "Limit"]

logger = logging.getLogger(__name__)

BURST_GAP = 60.0
"""Seconds without a refusal that end a burst: the next refusal is logged again."""

C = TypeVar("C", bound=Hashable)


class Limit(StrEnum):
    """The limit a refused connection was over."""

    TOTAL = "SMTPD_MAX_CONNECTIONS"
    """Every connection open counts."""
    PER_CLIENT = "SMTPD_MAX_CONNECTIONS_PER_CLIENT"
    """The connections open from the same address count."""


class ConnectionLimits(Generic[C]):
    """The connections open, by client address; in the event loop's thread only."""

    def __init__(
        self,
        total: int,
        per_client: int,
        *,
        exempt: Callable[[str], bool] = lambda host: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.per_client = per_client
        self.exempt = exempt
        """Whether an address is free of the per-client limit (the trusted networks)."""
        self.clock = clock
        self.refused = 0
        """Connections refused since the start."""
        self._open: dict[C, str] = {}  # each connection: its client's address
        self._by_client: dict[str, int] = {}
        self._last_refusal: dict[Limit, float] = {}

    def admit(self, connection: C, host: str) -> Limit | None:
        """Count ``connection`` (from ``host``) in, or the limit it is over (then it is not
        counted). A connection counted already stays in."""
        if connection in self._open:
            return None
        if len(self._open) >= self.total:
            return self._refuse(Limit.TOTAL, host, len(self._open))
        client = client_address(host)
        count = self._by_client.get(client, 0)
        if count >= self.per_client and not self.exempt(host):
            return self._refuse(Limit.PER_CLIENT, client, count)
        self._open[connection] = client
        self._by_client[client] = count + 1
        return None

    def release(self, connection: C) -> None:
        """Count ``connection`` out (once: again, or for one never counted, it does nothing)."""
        client = self._open.pop(connection, None)
        if client is None:
            return
        left = self._by_client[client] - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]

    def from_client(self, host: str) -> int:
        """The connections open from ``host``."""
        return self._by_client.get(client_address(host), 0)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[C]:
        """The connections open now (a copy: closing them while iterating is safe)."""
        return iter(list(self._open))

    def _refuse(self, limit: Limit, client: str, count: int) -> Limit:
        self.refused += 1
        now = self.clock()
        last = self._last_refusal.get(limit)
        self._last_refusal[limit] = now
        if last is None or now - last > BURST_GAP:
            if limit is Limit.TOTAL:
                what = f"{count} connections are open"
                allowed = self.total
            else:
                what = f"{count} connections are open from {client}"
                allowed = self.per_client
            logger.warning(
                "refusing connections with 421: %s, the limit (%s) is %d; not logged again "
                "until %d s pass without a refusal",
                what,
                limit.value,
                allowed,
                BURST_GAP,
                extra={"limit": limit.value, "client": client, "open": count},
            )
        return limit

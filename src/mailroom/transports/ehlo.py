"""The name we give in EHLO: a fully qualified domain name, or else an address literal.

RFC 5321 §4.1.1.1 and §2.3.5: the EHLO argument is the client's fully qualified domain name,
or, when it has none, an address literal (§4.1.3). Relays that check it (Postfix's
``reject_non_fqdn_helo_hostname``, say) refuse ``localhost`` and other single-label names,
which is what ``socket.getfqdn()`` gives on many machines. So: the operator's
``EMAIL_LOCAL_HOSTNAME`` if set; else the machine's FQDN when it is a qualified name; else the
address of our end of the connection, ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from enum import StrEnum
from typing import Any, NamedTuple

from mailroom.domains import is_qualified

__all__ = ["EhloName", "EhloSource", "address_literal", "is_qualified", "machine_fqdn"]


class EhloSource(StrEnum):
    """Where the EHLO name came from."""

    SETTING = "setting"
    """``EMAIL_LOCAL_HOSTNAME``, as the operator set it."""
    FQDN = "fqdn"
    """This machine's fully qualified name."""
    ADDRESS_LITERAL = "address-literal"
    """Our address on the connection: the machine's name was not qualified (or not found)."""


class EhloName(NamedTuple):
    name: str
    source: EhloSource
    fqdn: str | None = None
    """What ``socket.getfqdn()`` said, when it was asked (``None``: not asked, or no answer
    in time)."""


def address_literal(sockname: Any) -> str:
    """RFC 5321 §4.1.3 address literal of a socket address (``getsockname()``'s tuple)."""
    host = str(sockname[0]).split("%", 1)[0]  # an IPv6 scope (fe80::1%eth0) is local only
    address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 peer reached over a dual-stack socket
            return f"[{address.ipv4_mapped}]"
        return f"[IPv6:{address.compressed}]"
    return f"[{address}]"


async def machine_fqdn(timeout: float) -> str | None:
    """``socket.getfqdn()``, given at most ``timeout`` seconds: it asks the resolver (a reverse
    lookup), which can hang on a machine with broken DNS. ``None`` if it took too long.

    Run in a daemon thread of its own, not the loop's executor: a lookup that never returns
    must not keep the process from exiting (``asyncio.run`` waits for its executor's threads).
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str | None] = loop.create_future()

    def look_up() -> None:
        try:
            name: str | None = socket.getfqdn()
        except Exception:  # no name is an answer too: then an address literal is used
            name = None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, answer, name)

    threading.Thread(target=look_up, name="mailroom-getfqdn", daemon=True).start()
    try:
        async with asyncio.timeout(timeout):
            return await answer
    except TimeoutError:
        return None


def _settle(future: asyncio.Future[str | None], name: str | None) -> None:
    if not future.done():  # else the waiter gave up
        future.set_result(name)

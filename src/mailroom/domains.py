"""Our own domain names: which names are fully qualified, and this machine's name.

Shared by the EHLO name (:mod:`mailroom.transports.ehlo`) and the right-hand side of the
Message-IDs we make (:mod:`mailroom.message`): both must be a qualified domain, never
``localhost``, which is what ``socket.getfqdn()`` gives on many machines.
"""

from __future__ import annotations

import re
import socket
import threading

__all__ = ["forget_machine_fqdn", "is_qualified", "machine_fqdn_once"]

# RFC 5321 §4.1.2: Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


def is_qualified(name: str) -> bool:
    """A domain of two or more labels that is not ``localhost`` under another name
    (``localhost.localdomain``) and not an IPv4 address written as a name."""
    name = name.rstrip(".")
    if not _DOMAIN.fullmatch(name):
        return False
    if name.split(".", 1)[0].lower() == "localhost":
        return False
    return not name.rsplit(".", 1)[1].isdigit()  # 192.0.2.1: a top-level label is not numeric


class _Lookup:
    """One ``socket.getfqdn()`` in a daemon thread: it asks the resolver (a reverse lookup),
    which can hang on a machine with broken DNS, and must not keep the process from exiting."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.waited = False
        self.name: str | None = None
        threading.Thread(target=self._run, name="mailroom-getfqdn-once", daemon=True).start()

    def _run(self) -> None:
        try:
            self.name = socket.getfqdn()
        except Exception:  # no name is an answer too
            self.name = None
        finally:
            self.done.set()


_lookup: _Lookup | None = None
_lookup_lock = threading.Lock()


def machine_fqdn_once(timeout: float = 1.0) -> str | None:
    """``socket.getfqdn()``, asked once per process. The first call waits for it at most
    ``timeout`` seconds; later calls never wait: they get the answer if it has come by then,
    else ``None`` (a resolver that hangs costs one wait, not one per message)."""
    global _lookup  # noqa: PLW0603 - one lookup per process
    with _lookup_lock:
        if _lookup is None:
            _lookup = _Lookup()
        lookup = _lookup
        wait = not lookup.waited
        lookup.waited = True
    if wait:
        lookup.done.wait(timeout)
    return lookup.name if lookup.done.is_set() else None


def forget_machine_fqdn() -> None:
    """Ask again on the next call (for tests that change what the machine is called)."""
    global _lookup  # noqa: PLW0603 - one lookup per process
    with _lookup_lock:
        _lookup = None

"""The Message-ID we give a message that comes without one (RFC 5322 §3.6.4)."""

from __future__ import annotations

import contextlib
import functools
import secrets
import time

from mailroom.domains import is_qualified, machine_fqdn_once

__all__ = ["make_message_id", "message_id_domain"]


def make_message_id(domain: str) -> str:
    """A globally unique Message-ID (RFC 5322 §3.6.4) in our sender's domain (see
    :func:`message_id_domain` for when that domain is not a qualified one)."""
    return f"<{time.time_ns():x}.{secrets.token_hex(8)}@{message_id_domain(domain)}>"


@functools.lru_cache(maxsize=256)
def _qualified(domain: str) -> bool:
    """:func:`is_qualified`, once per domain: every message of a batch asks it again."""
    return is_qualified(domain)


def message_id_domain(sender_domain: str) -> str:
    """The right-hand side of our Message-IDs: a domain identifier (RFC 5322 §3.6.4).

    The sender's domain first: it ties the id to the From address, as filters like to see
    (Rspamd's MID_RHS_MATCH_FROM), and it never needs a lookup. An unqualified one
    (``webmaster@localhost``, Django's default sender, or ``app@web1``) would make ids that
    end in ``@localhost`` (MID_RHS_NOT_FQDN): then this machine's fully qualified name, as
    for EHLO; and only when the machine has none either, the sender's domain after all (the
    left-hand side alone keeps the id unique).
    """
    if not sender_domain.isascii():
        # An IDN ("bücher.de"): its A-labels (RFC 5890 §2.3.2.1) are what a header may carry
        # and what is_qualified reads; as U-labels it counted as unqualified.
        # (Not a valid name: left as it is, and not qualified either.)
        with contextlib.suppress(UnicodeError):
            sender_domain = sender_domain.encode("idna").decode("ascii")
    if _qualified(sender_domain):
        return sender_domain
    fqdn = machine_fqdn_once()
    if fqdn is not None and is_qualified(fqdn):
        return fqdn.rstrip(".")
    return sender_domain

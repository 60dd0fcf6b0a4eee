"""The ``Received`` trace field the submission port puts above every message it takes
(RFC 5321 §4.4), as an MTA does::

    Received: from app.example.com (unknown [192.0.2.7])
    \tby mail.example.com (Mailroom) with ESMTPSA id 3F2A9C0D11E4B785;
    \tMon, 07 Dec 2026 10:00:00 +0000

- ``from``: the name the client gave in EHLO (or HELO), then in the comment the name its
  address has in DNS and the address. No name is looked up (a lookup in the event loop would
  stall every connection; Postfix too writes ``unknown`` when it has no name), so the comment
  is ``(unknown [address])``, an IPv6 address written ``[IPv6:...]`` (RFC 5321 §4.1.3).
- ``with``: the protocol, in the words of RFC 3848 and RFC 6531 §3.7.3: ``ESMTP``, with ``S``
  after STARTTLS and ``A`` after AUTH (``ESMTPSA``); ``UTF8SMTP``... when MAIL asked for
  SMTPUTF8; ``SMTP`` after HELO.
- ``id``: a queue id drawn for this message (the outbox's id is given by the commit, after
  the bytes are final).

Who authenticated (the API key, the login name) is never written. The client's name is
written as given but for the characters a domain or an address literal may hold, each other
one a ``?`` (so nothing it sends can start another field, a comment or the date), and at most
255 of them: every line stays far below RFC 5322's 998 octets; the field is folded (CRLF and a
tab, RFC 5322 §2.2.3) before ``by`` and before the date.
"""

from __future__ import annotations

import functools
import re
import secrets

from mailroom.integrations.smtpd.peers import address_literal

__all__ = ["queue_id", "received_field"]

_NAME_MAX = 255  # RFC 1035 §2.3.4: a domain's length
_NOT_NAME = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")


def queue_id() -> str:
    """A new queue id: 16 hexadecimal digits, upper case (as Postfix's are)."""
    return secrets.token_hex(8).upper()


@functools.lru_cache(maxsize=1024)
def _name(given: str | None) -> str:
    """A name the client (or the operator's settings) gave, safe to write in the field."""
    if not given:
        return "unknown"
    return _NOT_NAME.sub("?", given[:_NAME_MAX])


def _protocol(*, extended: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    if not extended:
        return "SMTP"  # HELO: RFC 3848 names no TLS or AUTH variants of it
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_field(
    *,
    helo: str | None,
    host: str,
    hostname: str,
    extended: bool,
    tls: bool,
    authenticated: bool,
    smtputf8: bool,
    queue: str,
    date: bytes,
) -> bytes:
    """The whole field, folded, ending in CRLF. ``helo`` is the client's EHLO or HELO name,
    ``host`` its address, ``hostname`` ours, ``date`` the RFC 5322 date to write."""
    literal = address_literal(host)
    comment = f"(unknown {literal})" if literal is not None else "(unknown)"
    protocol = _protocol(extended=extended, tls=tls, authenticated=authenticated, smtputf8=smtputf8)
    lines = (
        f"Received: from {_name(helo)} {comment}\r\n"
        f"\tby {_name(hostname)} (Mailroom) with {protocol} id {queue};\r\n\t"
    )
    return lines.encode("ascii") + date + b"\r\n"

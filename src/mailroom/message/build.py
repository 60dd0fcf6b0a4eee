"""From a :class:`~mailroom.message.model.Message` to an
:class:`~mailroom.message.model.Envelope`: every check, then the bytes, once.

The common shapes are written by :mod:`mailroom.message.mime_fast`, the rest by the email
package (:mod:`mailroom.message.mime`). Whichever wrote them, no line of the result exceeds
998 octets (RFC 5322 §2.1.1), and the result must fit the configured size limit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import format_datetime

from mailroom.errors import InvalidAddressError, MessageError, MessageTooLargeError
from mailroom.message import mime_fast
from mailroom.message.address import Address, AddressInput, address_headers, parse_addresses
from mailroom.message.fields import check_fields
from mailroom.message.headers import (
    MAX_LINE_OCTETS,
    check_extra_headers,
    refuse_control_characters,
    refuse_line_breaks,
)
from mailroom.message.ids import make_message_id
from mailroom.message.mime import POLICY_ASCII, POLICY_UTF8, general_bytes
from mailroom.message.model import Envelope, Message

__all__ = ["build_envelope"]

_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The Date header for now (RFC 5322 §3.3), formatted once per second, not per message."""
    global _date_cache  # noqa: PLW0603 - a one-entry cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
    return _date_cache[1]


def build_envelope(
    message: Message,
    *,
    default_from: AddressInput,
    max_size: int = 25 * 1024 * 1024,
) -> Envelope:
    """Validate ``message`` and build its bytes and SMTP envelope."""
    message = check_fields(message)
    sender = Address.parse(message.from_email or default_from, "from_email")
    to = parse_addresses(message.to, "to")
    cc = parse_addresses(message.cc, "cc")
    bcc = parse_addresses(message.bcc, "bcc")
    reply_to = parse_addresses(message.reply_to, "reply_to")
    if not (to or cc or bcc):
        raise InvalidAddressError("to", "a message needs at least one recipient")
    refuse_line_breaks("subject", message.subject)
    check_extra_headers(message.headers)
    for attachment in message.attachments:
        refuse_control_characters("attachment filename", attachment.filename)
        refuse_control_characters("attachment mimetype", attachment.mimetype)
        if attachment.content_id is not None:
            refuse_control_characters("attachment content_id", attachment.content_id)
    if message.message_id is not None:
        refuse_control_characters("message_id", message.message_id)

    everyone = [sender, *to, *cc, *bcc, *reply_to]
    smtputf8 = any(a.needs_smtputf8 for a in everyone)
    policy = POLICY_UTF8 if smtputf8 else POLICY_ASCII

    addresses = address_headers(From=[sender], To=to, Cc=cc, Reply_To=reply_to)
    # Leading and trailing blanks do not survive a header's unfolding (RFC 5322 §2.2.3).
    headers = [
        ("Subject", message.subject.strip()),
        ("Date", format_datetime(message.date) if message.date else _date_now()),
        ("Message-ID", message.message_id or make_message_id(sender.domain)),
        *message.headers.items(),
    ]
    message_id = headers[2][1]
    data = None
    if not smtputf8 and not message.attachments:
        # Lines of at most 78 octets by construction, addresses one a line (each well under
        # 998 octets: a display name is capped, a local part and domain limited).
        data = mime_fast.compose(message.text, message.html, addresses, headers)
    if data is None:
        data = general_bytes(message, policy, addresses, headers)
        lines = data.split(b"\r\n")
        longest = max(map(len, lines))
        if longest > MAX_LINE_OCTETS:  # the policy should have prevented it; never send it
            raise MessageError("message", f"a line of {longest} octets is over RFC 5322's 998")
        if any(b"\n" in line or b"\r" in line for line in lines):  # likewise (RFC 5322 §2.3)
            raise MessageError("message", "a bare CR or LF would be sent; please report this")
    if len(data) > max_size:
        raise MessageTooLargeError(
            "message", f"{len(data)} bytes is over the limit of {max_size} (EMAIL_MAX_MESSAGE_SIZE)"
        )

    recipients = list(dict.fromkeys(a.addr_spec for a in (*to, *cc, *bcc)))
    return Envelope(
        sender=sender.addr_spec,
        recipients=tuple(recipients),
        data=data,
        message_id=message_id,
        smtputf8=smtputf8,
    )

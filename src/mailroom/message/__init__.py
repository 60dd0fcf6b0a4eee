"""Messages: what a caller hands us, and the bytes and envelope we hand a transport.

Rules enforced, each with an error naming the field:

- CR, LF or NUL in any header field is refused (header injection, RFC 5322 §2.2);
- addresses must be ``local@domain``; a non-ASCII domain is sent IDNA-encoded, a non-ASCII
  local part marks the message as needing SMTPUTF8 (RFC 6531); controls, line separators and
  bidirectional formatting characters are refused in addresses (they can make one address
  display as another), and bidi overrides in display names too;
- every field has the Python type it is documented with (a ``str``, not ``bytes`` or an
  ``int``), or a :class:`MessageError` names it;
- attachments are files: ``multipart/*`` is refused (Mailroom builds the MIME tree itself),
  ``message/rfc822`` is carried as an embedded message with CRLF line ends and a 7bit or 8bit
  transfer encoding (RFC 2046 §5.2.1 forbids base64 there), other ``message/*`` are refused;
- no line of the result exceeds 998 octets (RFC 5322 §2.1.1): headers are folded, bodies with
  long lines get quoted-printable or base64;
- the result must fit the configured size limit.

The modules, lowest first: ``headers`` (injection checks, encoded words, folding),
``address``, ``model`` (Message, Attachment, Envelope), ``ids`` (Message-ID), ``fields``
(type checks), ``mime`` (the email package's way) and ``mime_fast`` (the common shapes
directly), ``fingerprint`` (idempotency), ``build`` (:func:`build_envelope`).
"""

from __future__ import annotations

from mailroom.message.address import (
    MAX_DISPLAY_NAME_OCTETS,
    Address,
    AddressInput,
    split_address_list,
    without_bidi_overrides,
)
from mailroom.message.build import build_envelope
from mailroom.message.fingerprint import content_fingerprint
from mailroom.message.headers import MAX_LINE_OCTETS, refuse_line_breaks
from mailroom.message.ids import make_message_id, message_id_domain
from mailroom.message.model import Attachment, Envelope, Message

__all__ = [
    "MAX_DISPLAY_NAME_OCTETS",
    "MAX_LINE_OCTETS",
    "Address",
    "AddressInput",
    "Attachment",
    "Envelope",
    "Message",
    "build_envelope",
    "content_fingerprint",
    "make_message_id",
    "message_id_domain",
    "refuse_line_breaks",
    "split_address_list",
    "without_bidi_overrides",
]

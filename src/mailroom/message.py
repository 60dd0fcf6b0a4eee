"""Messages: what a caller hands us, and the bytes and envelope we hand a transport.

Built with :class:`email.message.EmailMessage` and an :mod:`email.policy`, never by string
concatenation: text + html make multipart/alternative, inline images (with a Content-ID) sit
with the html part in multipart/related, attachments wrap it all in multipart/mixed.

Rules enforced here, each with an error naming the field:

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
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import functools
import hashlib
import json
import mimetypes
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.headerregistry import Address as _HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailroom import mime_fast
from mailroom.domains import is_qualified, machine_fqdn_once
from mailroom.errors import (
    HeaderInjectionError,
    InvalidAddressError,
    MessageError,
    MessageTooLargeError,
)

__all__ = [
    "Address",
    "Attachment",
    "Envelope",
    "Message",
    "build_envelope",
    "content_fingerprint",
    "split_address_list",
    "without_bidi_overrides",
]

MAX_LINE_OCTETS = 998  # RFC 5322 §2.1.1, without the CRLF

# policy.SMTP folds at 78 and ends lines with CRLF; 7bit makes any non-ASCII body
# quoted-printable or base64, so the message needs no 8BITMIME from the relay. Headers we
# write raw (addresses, encoded words) are already folded: refold_source="none" keeps them.
_POLICY_ASCII = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")
_POLICY_UTF8 = email.policy.SMTPUTF8.clone(refold_source="none")

_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\x00]")
# RFC 5322 §2.2: a field name is printable US-ASCII except the colon. \Z, not $: "$" also
# matches before a trailing newline, which would let "X-Name\n" through.
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+\Z")
# RFC 5322 §3.2.3 atext, plus any non-ASCII character (RFC 6531 §3.3).
_LOCAL_PART = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
    r"(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+)*$"
)
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Not in any address: C0 and C1 controls (NEL, U+0085, among them), DEL, the Unicode line and
# paragraph separators, Unicode's Bidi_Control characters (U+061C, U+200E/F, U+202A-U+202E,
# U+2066-U+2069) and lone surrogates (undecodable input). The bidi ones are invisible and
# reorder what follows, so "moc.knab@..." can be shown as another address ("Trojan Source",
# CVE-2021-42574); the others are line breaks to some readers and controls to terminals.
_UNSAFE_IN_ADDRESS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# In a display name only the explicit overrides, embeddings and isolates are refused: a
# right-to-left name never needs them (the marks U+200E/F/U+061C are kept, mixed-direction
# names use them), and a reader that shows the name before the address would let an
# unterminated override reverse the address itself. Other controls are carried safely in an
# encoded word, blanks among them collapsed.
_BIDI_OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile("[\ud800-\udfff]")

# Headers that have their own argument, or that the MIME structure owns.
_RESERVED_HEADERS = {
    "from": "from_email",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply-to": "reply_to",
    "subject": "subject",
    "date": "date",
    "message-id": "message_id",
    "mime-version": None,
    "content-type": None,
    "content-transfer-encoding": None,
}


def refuse_line_breaks(field_name: str, value: str) -> None:
    """Raise :class:`HeaderInjectionError` if a header value holds CR, LF or NUL."""
    if _FORBIDDEN_IN_HEADERS.search(value):
        raise HeaderInjectionError(
            field_name, "contains a line break or NUL character, which is not allowed in a header"
        )


def _encode_domain(domain: str, field_name: str) -> str:
    unsafe = _UNSAFE_IN_ADDRESS.search(domain)
    if unsafe:
        raise InvalidAddressError(
            field_name, f"domain {domain!r} holds {_describe(unsafe.group())}, which no name may"
        )
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise InvalidAddressError(field_name, f"domain {domain!r} is not a valid name") from None
    # One trailing (root) dot names the same domain, but neither RFC 5322's dot-atom nor
    # RFC 5321's Domain allows it, so it is dropped rather than sent.
    ascii_domain = ascii_domain.removesuffix(".")
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidAddressError(field_name, f"domain {domain!r} is not a valid name")
    return ascii_domain.lower()


def _describe(char: str) -> str:
    """``a control character (U+0085)``: how an error names a character it cannot show."""
    kind = "a bidirectional formatting character" if _BIDI_CONTROLS.match(char) else None
    if kind is None:
        kind = "undecodable input" if _SURROGATES.match(char) else "a control character"
    return f"{kind} (U+{ord(char):04X})"


_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_bidi_overrides(name: str) -> str:
    """``name`` without the bidi overrides, embeddings and isolates a display name may not
    hold: for names taken from application data (a user's profile), where dropping them only
    makes the name plainer."""
    return _BIDI_OVERRIDES.sub("", name)


def _clean_display_name(name: str, field_name: str = "display name") -> str:
    """Collapse blank runs (they do not survive header unfolding) and enforce the length cap."""
    if not isinstance(name, str):
        raise InvalidAddressError(
            field_name, f"display name must be a str, not {type(name).__name__}"
        )
    unsafe = _BIDI_OVERRIDES.search(name) or _SURROGATES.search(name)
    if unsafe:
        raise InvalidAddressError(
            field_name,
            f"display name {name!r} holds {_describe(unsafe.group())}, which could make it or "
            "the address after it display reversed or as another; remove it",
        )
    cleaned = " ".join(name.split())
    if len(cleaned.encode("utf-8")) > MAX_DISPLAY_NAME_OCTETS:
        raise MessageError(field_name, f"display name is over {MAX_DISPLAY_NAME_OCTETS} bytes")
    return cleaned


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: ``local@domain`` and an optional display name.

    ``domain`` is stored IDNA-encoded; ``needs_smtputf8`` is true for a non-ASCII local part.
    """

    local_part: str
    domain: str
    display_name: str = ""

    @classmethod
    def parse(cls, value: str | Address, field_name: str = "address") -> Address:
        """Accept ``ada@example.com``, ``Ada Lovelace <ada@example.com>`` or an Address."""
        if isinstance(value, Address):
            # Built directly, an Address has skipped create()'s checks (line breaks, syntax).
            return cls.create(value.addr_spec, value.display_name, field_name)
        if not isinstance(value, str):
            raise InvalidAddressError(field_name, _not_an_address(value))
        return _parse_address_text(value, field_name)

    @classmethod
    def _parse_text(cls, value: str, field_name: str) -> Address:
        refuse_line_breaks(field_name, value)
        text = value.strip()
        if "," in text and len(split_address_list(text)) > 1:
            raise InvalidAddressError(
                field_name,
                f"{value!r} holds more than one address; one is expected here "
                "(pass several as a list, or one --to option each)",
            )
        display = ""
        if text.endswith(">") and "<" in text:
            display, _, rest = text.rpartition("<")
            text = rest[:-1].strip()
            display = display.strip()
            if len(display) >= 2 and display[0] == display[-1] == '"':
                display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif "<" in text and ">" not in text:
            raise InvalidAddressError(
                field_name, f"{value!r} is missing the '>' that closes the address"
            )
        elif ">" in text and "<" not in text:
            raise InvalidAddressError(
                field_name, f"{value!r} is missing the '<' that opens the address"
            )
        elif "<" in text:
            raise InvalidAddressError(
                field_name, f"{value!r} has text after the '>' that closes the address"
            )
        return cls.create(text, display, field_name)

    @classmethod
    def create(cls, addr_spec: str, display_name: str = "", field_name: str = "address") -> Address:
        if not isinstance(addr_spec, str):
            raise InvalidAddressError(field_name, _not_an_address(addr_spec))
        refuse_line_breaks(field_name, addr_spec)
        if isinstance(display_name, str):
            refuse_line_breaks(field_name, display_name)
        local, at, domain = addr_spec.strip().rpartition("@")
        if not at or not local or not domain:
            raise InvalidAddressError(field_name, f"{addr_spec!r} is not an address (local@domain)")
        unsafe = _UNSAFE_IN_ADDRESS.search(local)
        if unsafe:
            raise InvalidAddressError(
                field_name,
                f"{addr_spec!r} holds {_describe(unsafe.group())} in its local part, which "
                "could make it display as another address",
            )
        if not _LOCAL_PART.match(local) or len(local.encode()) > 64:
            raise InvalidAddressError(field_name, f"{addr_spec!r} {_local_part_fault(local)}")
        return cls(
            local, _encode_domain(domain, field_name), _clean_display_name(display_name, field_name)
        )

    @property
    def addr_spec(self) -> str:
        return f"{self.local_part}@{self.domain}"

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local_part.isascii()

    def __str__(self) -> str:
        return str(self._header_address())

    def with_display_name(self, display_name: str) -> Address:
        if isinstance(display_name, str):
            refuse_line_breaks("display name", display_name)
        return Address(self.local_part, self.domain, _clean_display_name(display_name))

    def _header_address(self) -> _HeaderAddress:
        return _HeaderAddress(self.display_name, self.local_part, self.domain)


def _not_an_address(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return "expected an address string, got bytes: decode them first (value.decode())"
    return f"expected an address string, got {type(value).__name__}"


def _local_part_fault(local: str) -> str:
    """Why ``local`` is not a local part, in words an operator can act on."""
    if len(local.encode()) > 64:
        return "has a local part over 64 octets (RFC 5321 §4.5.3.1.1)"
    if "@" in local:
        return "holds more than one '@': one address per entry, separated by commas"
    if any(char.isspace() for char in local):
        return "has a blank in it (two addresses? separate them with a comma)"
    for char in '<>"(),;:[]\\':
        if char in local:
            return f"has a {char!r} where the address's local part is (RFC 5322 §3.4.1)"
    return "has an invalid local part (dots only between other characters, RFC 5322 §3.4.1)"


def split_address_list(value: str) -> list[str]:
    """``"a@x, Ada <b@y>"`` → ``["a@x", "Ada <b@y>"]``: split at commas outside quotes and
    angle brackets (RFC 5322 §3.4 address-list), empty entries dropped.

    Only a split into entries that each hold an ``@`` counts: ``"Lovelace, Ada <ada@x>"``
    (an unquoted comma in a name) stays one entry, as it was always read.
    """
    entries: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth = max(depth - 1, 0)
        elif char == "," and not quoted and depth == 0:
            entries.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    entries.append("".join(current).strip())
    entries = [entry for entry in entries if entry]
    if len(entries) > 1 and all("@" in entry for entry in entries):
        return entries
    return [value]


@functools.lru_cache(maxsize=256)
def _parse_address_text(value: str, field_name: str) -> Address:
    """Parsed addresses are immutable, and a batch repeats its sender on every message."""
    return Address._parse_text(value, field_name)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by a message. With ``content_id`` it is an inline part of the html."""

    filename: str
    content: bytes
    mimetype: str = "application/octet-stream"
    content_id: str | None = None

    @classmethod
    def from_path(
        cls, path: str | Path, mimetype: str | None = None, content_id: str | None = None
    ) -> Attachment:
        p = Path(path)
        guessed = mimetype or mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        return cls(p.name, p.read_bytes(), guessed, content_id)

    @classmethod
    def from_bytes(
        cls,
        filename: str,
        content: bytes,
        mimetype: str | None = None,
        content_id: str | None = None,
    ) -> Attachment:
        guessed = mimetype or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return cls(filename, content, guessed, content_id)


AddressInput = str | Address


@dataclass(frozen=True)
class Message:
    """What a caller wants sent. Nothing is validated until :func:`build_envelope`.

    ``to``, ``cc``, ``bcc`` and ``reply_to`` take an address, a list of them, or a string of
    comma-separated addresses (``"ada@x, Bob <bob@y>"``); ``None`` there, and for ``headers``,
    ``metadata`` and ``attachments``, means none.
    """

    to: Sequence[AddressInput] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    from_email: AddressInput | None = None
    cc: Sequence[AddressInput] = ()
    bcc: Sequence[AddressInput] = ()
    reply_to: Sequence[AddressInput] = ()
    attachments: Sequence[Attachment] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    date: datetime | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message ready for a transport: SMTP envelope plus the exact bytes, built once."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    smtputf8: bool = False


# Characters the email package will not store in a header (it splits on them as line breaks)
# or would emit raw: C0/C1 controls, DEL and the Unicode line and paragraph separators.
_NEEDS_ENCODED_WORDS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_EW_CHUNK_OCTETS = 45  # 45 octets → 60 base64 characters; with =?utf-8?b?...?= under 75


def _encoded_words(value: str) -> str:
    """Encode a whole value as RFC 2047 'B' encoded words, one per folded line.

    Used for every value that is not plain printable ASCII. Blanks sit inside the words, so
    they survive exactly (the email package's own refolding can collapse runs of them), and
    control characters, which it would refuse or emit raw, are carried safely. A chunk never
    splits a UTF-8 sequence (RFC 2047 §5 rule 3).
    """
    words: list[str] = []
    chunk = b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _EW_CHUNK_OCTETS:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _refuse_control_characters(field_name: str, value: str) -> None:
    """For values written as they are (file names, ids, types): no controls at all.

    The email package treats several of them (VT, FF, FS, NEL, U+2028...) as line breaks
    and raises a bare ValueError, or drops them; the rest would be emitted raw.
    """
    refuse_line_breaks(field_name, value)
    if _NEEDS_ENCODED_WORDS.search(value):
        raise MessageError(field_name, "contains a control character, which is not allowed here")


_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")


def _set_unstructured(mime: EmailMessage, name: str, value: str) -> None:
    # Literal text that looks like an encoded word ("=?utf-8?q?...?=") would be decoded by
    # the reader (RFC 2047 §6.1); encoding the whole value keeps it as written.
    if not _PRINTABLE_ASCII.match(value) or "=?" in value:
        mime.set_raw(name, _encoded_words(value))
    elif any(len(word) > _FOLD_AT - len(name) - 2 for word in value.split(" ")):
        longest = max(map(len, value.split(" ")))
        if len(name) + 2 + longest <= MAX_LINE_OCTETS:
            mime.set_raw(name, _fold_at_blanks(name, value))
        elif name == "Subject":
            # RFC 5322 §2.2.3 folds only at blanks, so a word too long for a 998-octet line
            # is carried in RFC 2047 encoded words, which a reader joins back (§6.2). A
            # subject is free text; the caller's own fields may be structured (below).
            mime.set_raw(name, _encoded_words(value))
        else:
            raise MessageError(
                f"header {name}",
                f"has a word of {longest} characters, and a header line may hold "
                f"{MAX_LINE_OCTETS} octets (RFC 5322 §2.1.1); this field is folded only at "
                "blanks (its value may be structured, e.g. a URL): shorten it",
            )
    elif len(name) + 2 + len(value) > _FOLD_AT:
        # The email package's own folding can move a first word of specials (":::") to a
        # continuation line, which a reader then gives back with a leading blank.
        mime.set_raw(name, _fold_at_blanks(name, value))
    else:
        mime[name] = value


_FOLD_AT = 78  # RFC 5322 §2.1.1's "SHOULD"; 998 is the limit that is checked
_BLANK_THEN_WORD = re.compile(r" *[^ ]+")


def _fold_at_blanks(name: str, value: str) -> str:
    """Fold plain ASCII at its blanks only (RFC 5322 §2.2.3), however long a word is.

    The email package would turn a word too long for one line into encoded words, which a
    reader of a structured value never decodes: a List-Unsubscribe URL (RFC 2369) must stay as
    written. A word longer than 998 octets is caught by the line check in build_envelope.
    """
    pieces = _BLANK_THEN_WORD.findall(value)
    lines = [pieces[0]] if pieces else [""]
    width = len(name) + 2
    for piece in pieces[1:]:
        if width + len(lines[-1]) + len(piece) > _FOLD_AT:
            lines.append(piece)  # starts with its blank: the folding white space
            width = 0
        else:
            lines[-1] += piece
    return "\n".join(lines)


MAX_DISPLAY_NAME_OCTETS = 256


def _format_address(address: Address) -> str:
    """One address for a header: a (quoted) ASCII phrase, or one RFC 2047 encoded word.

    A display name becomes a single encoded word, never several: CPython's parser keeps the
    blank between adjacent encoded words in a phrase, where RFC 2047 §6.2 drops it, so a
    name split over several words would come back altered. The length cap on display names
    keeps that one word, and so the line, well under 998 octets.
    """
    name = address.display_name
    if not name:
        return address.addr_spec
    if _PRINTABLE_ASCII.match(name) and "=?" not in name:  # see _set_unstructured
        return str(address._header_address())
    encoded = base64.b64encode(name.encode("utf-8")).decode("ascii")
    return f"=?utf-8?b?{encoded}?= <{address.addr_spec}>"


def _address_headers(**fields: Sequence[Address]) -> list[tuple[str, str]]:
    """``From``, ``To``... as written raw, one address a line; empty fields left out."""
    return [
        (name.replace("_", "-"), ",\n ".join(_format_address(a) for a in addresses))
        for name, addresses in fields.items()
        if addresses
    ]


def _addresses(values: object, field_name: str) -> list[Address]:
    """The addresses of a field: one, a list, or a comma-separated string of them."""
    if values is None:
        return []
    if isinstance(values, str | Address):
        values = [values]
    elif isinstance(values, bytes | bytearray) or not isinstance(values, Iterable):
        raise InvalidAddressError(field_name, f"{_not_an_address(values)} (or a list of them)")
    found: list[Address] = []
    for value in values:
        if isinstance(value, str) and "," in value:
            refuse_line_breaks(field_name, value)  # before the entries are stripped
            found += [Address.parse(entry, field_name) for entry in split_address_list(value)]
        else:
            found.append(Address.parse(value, field_name))
    return found


_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The Date header for now (RFC 5322 §3.3), formatted once per second, not per message."""
    global _date_cache  # noqa: PLW0603 - a one-entry cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
    return _date_cache[1]


def make_message_id(domain: str) -> str:
    """A globally unique Message-ID (RFC 5322 §3.6.4) in our sender's domain (see
    :func:`message_id_domain` for when that domain is not a qualified one)."""
    return f"<{time.time_ns():x}.{secrets.token_hex(8)}@{message_id_domain(domain)}>"


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
    if is_qualified(sender_domain):
        return sender_domain
    fqdn = machine_fqdn_once()
    if fqdn is not None and is_qualified(fqdn):
        return fqdn.rstrip(".")
    return sender_domain


def _check_extra_headers(headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not _FIELD_NAME.match(name):
            raise HeaderInjectionError(f"header {name!r}", "is not a valid header field name")
        refuse_line_breaks(f"header {name}", value)
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
            argument = _RESERVED_HEADERS.get(lowered)
            hint = f"; pass {argument}= instead" if argument else "; Mailroom sets it"
            raise MessageError(f"header {name}", f"cannot be set through headers{hint}")


def _html_alternative(mime: EmailMessage) -> EmailMessage:
    for part in mime.iter_parts():
        if isinstance(part, EmailMessage) and part.get_content_type() == "text/html":
            return part
    raise MessageError("html", "no html part to attach inline images to")  # pragma: no cover


# RFC 2045 §5.1: type "/" subtype, each a token.
_MIME_TOKEN = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"  # noqa: S105 - not a password
_MIME_TYPE = re.compile(rf"({_MIME_TOKEN})/({_MIME_TOKEN})\Z")


def _attachment_type(attachment: Attachment) -> tuple[str, str]:
    """(maintype, subtype) of an attachment, or a MessageError naming it.

    ``multipart/*`` is refused: the MIME tree is Mailroom's to build, and a part that claims
    to be one but holds a file is a broken tree. ``message/*`` other than ``message/rfc822``
    (partial, external-body, delivery reports, global) each have rules of their own that a
    file attachment does not meet; attached as application/octet-stream they arrive intact.
    """
    name = attachment.filename
    match = _MIME_TYPE.match(attachment.mimetype.strip())
    if not match:
        raise MessageError(
            "attachment mimetype",
            f"{attachment.mimetype!r} (for {name!r}) is not a MIME type: give type/subtype, "
            "e.g. application/pdf (RFC 2045 §5.1), without parameters",
        )
    maintype, subtype = match.group(1).lower(), match.group(2).lower()
    if maintype == "multipart":
        raise MessageError(
            "attachment mimetype",
            f"{name!r} is given as {maintype}/{subtype}, which is a MIME container Mailroom "
            "builds itself, not a file type: attach the parts one by one, or the file as "
            "application/octet-stream",
        )
    if maintype == "message" and subtype != "rfc822":
        raise MessageError(
            "attachment mimetype",
            f"{name!r} is given as {maintype}/{subtype}; only message/rfc822 (an email) can be "
            "attached as a message: attach this one as application/octet-stream",
        )
    return maintype, subtype


def _embedded_message(
    attachment: Attachment, policy: email.policy.EmailPolicy[EmailMessage]
) -> tuple[EmailMessage, str]:
    """An attached email (message/rfc822) as a message part, and its transfer encoding.

    RFC 2046 §5.2.1 allows only 7bit, 8bit or binary for message/rfc822, so the email is not
    base64-encoded like other files: it is parsed and written line by line, every line ended
    by CRLF (RFC 5322 §2.1; a file saved on Unix ends them in LF). Under the 7bit policy the
    email package re-encodes 8-bit text parts inside it (quoted-printable or base64, as
    RFC 2046 allows for them); what it cannot make 7bit, and lines over 998 octets, which no
    encoding of the embedded message may fix, are refused.
    """
    name = attachment.filename
    content = attachment.content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    inner = email.parser.BytesParser(policy=policy).parsebytes(content.replace(b"\n", b"\r\n"))
    assert isinstance(inner, EmailMessage)  # the policy's message_factory  # noqa: S101
    if not inner.keys():
        raise MessageError(
            "attachment content",
            f"{name!r} is given as message/rfc822 but has no header fields, so it is not an "
            "email: attach it as text/plain or application/octet-stream",
        )
    data = inner.as_bytes(policy=policy)
    longest = max(map(len, data.split(b"\r\n")))
    if longest > MAX_LINE_OCTETS:
        raise MessageError(
            "attachment content",
            f"{name!r} (message/rfc822) has a line of {longest} octets, over RFC 5322's "
            f"{MAX_LINE_OCTETS}, and an attached email may not be encoded to fix that "
            "(RFC 2046 §5.2.1): attach it as application/octet-stream",
        )
    if data.isascii():
        return inner, "7bit"
    if policy.cte_type == "8bit":
        # Only with SMTPUTF8, which requires 8BITMIME of the relay (RFC 6531 §3.1).
        return inner, "8bit"
    raise MessageError(
        "attachment content",
        f"{name!r} (message/rfc822) holds 8-bit data that cannot be re-encoded as 7bit, and "
        "an attached email may not be base64-encoded (RFC 2046 §5.2.1): attach it as "
        "application/octet-stream",
    )


def _add_file(
    add: Any,
    attachment: Attachment,
    policy: email.policy.EmailPolicy[EmailMessage],
    **options: str,
) -> None:
    """Add one attachment with ``add`` (``add_attachment`` or ``add_related``)."""
    maintype, subtype = _attachment_type(attachment)
    if (maintype, subtype) == ("message", "rfc822"):
        inner, cte = _embedded_message(attachment, policy)
        add(inner, cte=cte, filename=attachment.filename, **options)
    else:
        add(attachment.content, maintype, subtype, filename=attachment.filename, **options)


def _build_mime(message: Message, policy: email.policy.EmailPolicy[EmailMessage]) -> EmailMessage:
    inline = [a for a in message.attachments if a.content_id]
    files = [a for a in message.attachments if not a.content_id]
    mime = EmailMessage(policy=policy)
    if message.text is not None or message.html is None:
        mime.set_content(message.text or "", subtype="plain", charset="utf-8")
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html", charset="utf-8")
    else:
        mime.set_content(message.html, subtype="html", charset="utf-8")
    if inline:
        if message.html is None:
            raise MessageError("attachments", "inline images (content_id) need an html body")
        html_part = mime if mime.get_content_type() == "text/html" else _html_alternative(mime)
        for image in inline:
            assert image.content_id is not None  # filtered above  # noqa: S101
            refuse_line_breaks("attachment content_id", image.content_id)
            _add_file(
                html_part.add_related,
                image,
                policy,
                cid=f"<{image.content_id.strip('<>')}>",
                disposition="inline",
            )
    for attachment in files:
        refuse_line_breaks("attachment filename", attachment.filename)
        _add_file(mime.add_attachment, attachment, policy)
    return mime


_WRITTEN_AS_IS = {"Date", "Message-ID"}  # ours, already in their exact form


def _general_bytes(
    message: Message,
    policy: email.policy.EmailPolicy[EmailMessage],
    addresses: list[tuple[str, str]],
    headers: list[tuple[str, str]],
) -> bytes:
    """Any message, through the email package (see :mod:`mailroom.mime_fast` for the
    shapes that skip it)."""
    mime = _build_mime(message, policy)
    for name, value in addresses:
        mime.set_raw(name, value)
    for name, value in headers:
        if name in _WRITTEN_AS_IS:
            mime[name] = value
        else:
            _set_unstructured(mime, name, value)
    # EmailMessage puts MIME-Version on multipart messages only; RFC 2045 §4 wants it always.
    if "MIME-Version" not in mime:
        mime["MIME-Version"] = "1.0"
    return mime.as_bytes(policy=policy)


def _check_text(field_name: str, value: object, *, optional: bool = False) -> None:
    """A str (or None where optional) of valid Unicode, or a MessageError naming the field."""
    if isinstance(value, str):
        if not value.isascii() and _SURROGATES.search(value):
            raise MessageError(
                field_name,
                "holds undecodable input (lone surrogates, as from bytes decoded with "
                "errors='surrogateescape'): decode it as UTF-8, or with errors='replace'",
            )
        return
    if value is None and optional:
        return
    expected = "a str or None" if optional else "a str"
    if isinstance(value, bytes | bytearray):
        raise MessageError(
            field_name, f"must be {expected}, not bytes: decode them first (value.decode())"
        )
    raise MessageError(field_name, f"must be {expected}, not {type(value).__name__}")


def _check_fields(message: Message) -> Message:
    """Every field of the type it is documented with, or a MessageError naming it (a caller
    without type checking gets that, not a TypeError from deep in the email package).
    ``None`` for ``headers``, ``metadata`` or ``attachments`` is taken as empty."""
    if not isinstance(message, Message):
        raise MessageError("message", f"expected a Message, got {type(message).__name__}")
    empty: dict[str, Any] = {
        name: empty
        for name, empty in (("headers", {}), ("metadata", {}), ("attachments", ()))
        if getattr(message, name) is None
    }
    if empty:
        message = replace(message, **empty)
    _check_text("subject", message.subject)
    _check_text("text", message.text, optional=True)
    _check_text("html", message.html, optional=True)
    _check_text("message_id", message.message_id, optional=True)
    if message.date is not None and not isinstance(message.date, datetime):
        raise MessageError("date", f"must be a datetime or None, not {type(message.date).__name__}")
    for name in ("headers", "metadata"):
        if not isinstance(getattr(message, name), Mapping):
            kind = type(getattr(message, name)).__name__
            raise MessageError(name, f"must be a dict (a mapping), not {kind}")
    for name, value in message.headers.items():
        _check_text("header names", name)
        _check_text(f"header {name}", value)
    attachments = message.attachments
    if isinstance(attachments, str | bytes | Attachment) or not isinstance(attachments, Iterable):
        raise MessageError(
            "attachments", f"must be a list of Attachment, not {type(attachments).__name__}"
        )
    for position, attachment in enumerate(attachments):
        if not isinstance(attachment, Attachment):
            raise MessageError(
                "attachments",
                f"entry {position} is a {type(attachment).__name__}, not an Attachment: make "
                "one with Attachment.from_path(path) or Attachment.from_bytes(name, content)",
            )
        _check_text("attachment filename", attachment.filename)
        _check_text("attachment mimetype", attachment.mimetype)
        _check_text("attachment content_id", attachment.content_id, optional=True)
        if not isinstance(attachment.content, bytes | bytearray):
            hint = ": encode it first (text.encode())"
            if not isinstance(attachment.content, str):
                hint = ""
            raise MessageError(
                "attachment content",
                f"{attachment.filename!r}: must be bytes, "
                f"not {type(attachment.content).__name__}{hint}",
            )
    return message


def content_fingerprint(message: Message, *, stream: str) -> str:
    """A digest of what the caller asked to send, to tell a retry from a different message
    under one idempotency key: the stream, addresses, subject, bodies, the caller's headers
    and the attachments. Not the Date or Message-ID (made afresh on every call), the send
    time, or the metadata (the caller's bookkeeping, not content)."""
    message = _check_fields(message)

    def addresses(values: object, field_name: str) -> list[str]:
        return [f"{a.display_name}\0{a.addr_spec}" for a in _addresses(values, field_name)]

    canonical = {
        "stream": stream,
        "from": addresses(message.from_email, "from_email"),
        "to": addresses(message.to, "to"),
        "cc": addresses(message.cc, "cc"),
        "bcc": addresses(message.bcc, "bcc"),
        "reply_to": addresses(message.reply_to, "reply_to"),
        "subject": message.subject.strip(),
        "text": message.text,
        "html": message.html,
        "headers": list(message.headers.items()),
        "attachments": [
            [a.filename, a.mimetype, a.content_id, hashlib.sha256(a.content).hexdigest()]
            for a in message.attachments
        ],
    }
    encoded = json.dumps(canonical, separators=(",", ":")).encode("ascii")
    return hashlib.sha256(encoded).hexdigest()


def build_envelope(
    message: Message,
    *,
    default_from: AddressInput,
    max_size: int = 25 * 1024 * 1024,
) -> Envelope:
    """Validate ``message`` and build its bytes and SMTP envelope."""
    message = _check_fields(message)
    sender = Address.parse(message.from_email or default_from, "from_email")
    to = _addresses(message.to, "to")
    cc = _addresses(message.cc, "cc")
    bcc = _addresses(message.bcc, "bcc")
    reply_to = _addresses(message.reply_to, "reply_to")
    if not (to or cc or bcc):
        raise InvalidAddressError("to", "a message needs at least one recipient")
    refuse_line_breaks("subject", message.subject)
    _check_extra_headers(message.headers)
    for attachment in message.attachments:
        _refuse_control_characters("attachment filename", attachment.filename)
        _refuse_control_characters("attachment mimetype", attachment.mimetype)
        if attachment.content_id is not None:
            _refuse_control_characters("attachment content_id", attachment.content_id)
    if message.message_id is not None:
        _refuse_control_characters("message_id", message.message_id)

    everyone = [sender, *to, *cc, *bcc, *reply_to]
    smtputf8 = any(a.needs_smtputf8 for a in everyone)
    policy = _POLICY_UTF8 if smtputf8 else _POLICY_ASCII

    addresses = _address_headers(From=[sender], To=to, Cc=cc, Reply_To=reply_to)
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
        data = _general_bytes(message, policy, addresses, headers)
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

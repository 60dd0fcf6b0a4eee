"""Addresses: parsing, checking, and writing them in header fields.

An address must be ``local@domain``; a non-ASCII domain is sent IDNA-encoded, a non-ASCII
local part marks the message as needing SMTPUTF8 (RFC 6531). Controls, line separators and
bidirectional formatting characters are refused in addresses (they can make one address
display as another), and bidi overrides in display names too.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address as _HeaderAddress

from mailroom.errors import InvalidAddressError, MessageError
from mailroom.message.headers import is_plain_ascii, refuse_line_breaks

__all__ = [
    "MAX_DISPLAY_NAME_OCTETS",
    "SURROGATES",
    "Address",
    "AddressInput",
    "address_headers",
    "parse_addresses",
    "split_address_list",
    "without_bidi_overrides",
]

MAX_DISPLAY_NAME_OCTETS = 256

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
#: Lone surrogates: what bytes decoded with ``errors="surrogateescape"`` leave behind.
SURROGATES = re.compile("[\ud800-\udfff]")


@functools.lru_cache(maxsize=1024)
def _encode_domain(domain: str, field_name: str) -> str:
    """The domain as sent (A-labels, lower case), or an error naming the field. Cached: the
    recipients of a batch share a few domains, and each check is a dozen regex matches."""
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
        kind = "undecodable input" if SURROGATES.match(char) else "a control character"
    return f"{kind} (U+{ord(char):04X})"


_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_bidi_overrides(name: str) -> str:
    """``name`` without the bidi overrides, embeddings and isolates a display name may not
    hold: for names taken from application data (a user's profile), where dropping them only
    makes the name plainer."""
    return _BIDI_OVERRIDES.sub("", name)


def _clean_display_name(name: str, field_name: str = "display name") -> str:
    """Collapse blank runs (they do not survive header unfolding) and enforce the length cap."""
    if name == "":
        return name
    if not isinstance(name, str):
        raise InvalidAddressError(
            field_name, f"display name must be a str, not {type(name).__name__}"
        )
    unsafe = _BIDI_OVERRIDES.search(name) or SURROGATES.search(name)
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


AddressInput = str | Address


def _not_an_address(value: object) -> str:
    """What an error says of a value that is not an address string."""
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


def parse_addresses(values: object, field_name: str) -> list[Address]:
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


@functools.lru_cache(maxsize=1024)
def _format_address(address: Address) -> str:
    """One address for a header: a (quoted) ASCII phrase, or one RFC 2047 encoded word.
    Cached: a batch names its sender on every message, and the email package's quoting of a
    display name costs more than the rest of the header.

    A display name becomes a single encoded word, never several: CPython's parser keeps the
    blank between adjacent encoded words in a phrase, where RFC 2047 §6.2 drops it, so a
    name split over several words would come back altered. The length cap on display names
    keeps that one word, and so the line, well under 998 octets.
    """
    name = address.display_name
    if not name:
        return address.addr_spec
    if is_plain_ascii(name):
        return str(address._header_address())
    encoded = base64.b64encode(name.encode("utf-8")).decode("ascii")
    return f"=?utf-8?b?{encoded}?= <{address.addr_spec}>"


def address_headers(**fields: Sequence[Address]) -> list[tuple[str, str]]:
    """``From``, ``To``... as written raw, one address a line; empty fields left out."""
    return [
        (name.replace("_", "-"), ",\n ".join(_format_address(a) for a in addresses))
        for name, addresses in fields.items()
        if addresses
    ]

"""A contact of a mailing list: the checks on what it holds, and how a change is merged into
what is stored. The CSV import and the list operations (later the API) all write through
:func:`write_contacts`, so a contact means the same however it came in.

What a contact holds:

- ``address``: normalised, the lower-case addr-spec (:func:`normalize_address`), unique in
  its list;
- ``name``: the display name for its ``To:``; blanks collapsed, at most 256 bytes (UTF-8), no
  control characters and no bidirectional overrides (as :class:`~mailroom.message.Address`);
- ``attributes``: its merge fields, ``{{ contact.<key> }}`` in a campaign. A JSON object of
  at most :data:`MAX_ATTRIBUTES` keys, at most :data:`MAX_ATTRIBUTES_BYTES` as compact JSON;
  each key an identifier (a letter, then letters, digits and ``_``; at most 64 characters),
  not one of :data:`RESERVED_KEYS`; each value a string, a number or true/false.

A change *adds to* a contact (it is an upsert): the attributes it gives are set, those it does
not give are kept, and a key given as ``None`` is removed (as in a JSON Merge Patch,
RFC 7396); its name replaces the stored one unless it is :data:`KEEP`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal, Protocol, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from mailroom.errors import MessageError
from mailroom.message import MAX_DISPLAY_NAME_OCTETS, Address
from mailroom.outbox import list_queries as q

__all__ = [
    "KEEP",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_BYTES",
    "MAX_KEY",
    "RESERVED_KEYS",
    "AttributeValue",
    "Contact",
    "ContactChange",
    "Keep",
    "PreparedWrite",
    "WriteOutcome",
    "attributes_json",
    "check_attribute_key",
    "check_attributes",
    "check_contact_name",
    "contact_from_row",
    "parse_contact_address",
    "prepare_write",
    "write_contacts",
    "write_prepared",
]

MAX_ATTRIBUTES = 50
"""The most attributes a contact may have."""
MAX_ATTRIBUTES_BYTES = 8192
"""The largest a contact's attributes may be, as compact JSON in UTF-8."""
MAX_KEY = 64
"""The longest attribute key."""
RESERVED_KEYS: Final = frozenset(
    # The contact's own fields (and the CSV columns that hold them)...
    {"address", "email", "name"}
    # ...and a mapping's methods: a template reads {{ contact.items }} as the method, not as
    # an attribute of that name, so such a key could never be used as a merge field.
    | {"clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault"}
    | {"update", "values"}
)
"""Keys an attribute may not have."""

AttributeValue = str | int | float | bool
"""What an attribute may hold."""

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# A display name's own rules (see mailroom.message.address), and no control character at all:
# blanks are collapsed before this is searched, so any control left is not a blank.
_NOT_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# The database cannot store a NUL (PostgreSQL's text and jsonb); a lone surrogate is not text.
_NOT_IN_VALUE = re.compile("[\x00\ud800-\udfff]")
# A plain dot-atom address (RFC 5322 §3.4.1) with a host name for its domain: the common case,
# which the full parser would accept and turn into exactly its lower-case self.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_LOCAL_MAX = 64  # octets, RFC 5321 §4.5.3.1.1
# Made once: json.dumps with any option makes a new encoder per call, a third of the cost.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_DOMAIN_MAX = 253  # characters of a name written without its root dot


class Keep(Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""A change's name when it leaves the stored name as it is."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact of a list, as stored."""

    id: int
    list_id: int
    address: str
    name: str | None
    attributes: dict[str, AttributeValue]
    created_at: float
    updated_at: float


class ContactChange(Protocol):
    """What :func:`write_contacts` writes for one contact (checked already)."""

    @property
    def address(self) -> str:
        """Normalised."""

    @property
    def name(self) -> str | Literal[Keep.KEEP] | None:
        """The new name (``None``: none), or :data:`KEEP`."""

    @property
    def attributes(self) -> Mapping[str, AttributeValue | None]:
        """Set on the contact; a ``None`` value removes that key."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What :func:`write_contacts` did."""

    created: int
    updated: int
    refused: dict[int, MessageError]
    """Changes not written, by their position: why (the attributes they would leave)."""


def parse_contact_address(text: str, field: str = "address") -> tuple[str, str]:
    """(the normalised address, the display name written with it or ``""``): ``ada@x`` or
    ``Ada <ada@x>``. The normalised form is :func:`mailroom.consent.normalize_address`'s.

    A plain ``local@host.name`` is taken without the full parser, which is most of an import's
    time otherwise: the result is the same (``tests/unit/campaigns`` checks that it is).
    """
    plain = _PLAIN_ADDRESS.fullmatch(text)
    if plain is not None and plain.end(1) <= _LOCAL_MAX and len(text) - plain.end(1) <= 254:
        return text.lower(), ""
    parsed = Address.parse(text, field)
    return parsed.addr_spec.lower(), parsed.display_name


def check_contact_name(name: str, field: str = "name") -> str | None:
    """A contact's name as stored (blanks collapsed), or ``None`` for an empty one."""
    cleaned = " ".join(name.split())
    if not cleaned:
        return None
    bad = _NOT_IN_NAME.search(cleaned)
    if bad is not None:
        raise MessageError(
            field,
            f"{cleaned!r} holds U+{ord(bad.group()):04X}, a control or bidirectional "
            "formatting character, which a name in an address may not",
        )
    if len(cleaned) * 4 > MAX_DISPLAY_NAME_OCTETS and len(cleaned.encode()) > (
        MAX_DISPLAY_NAME_OCTETS
    ):
        raise MessageError(field, f"is over {MAX_DISPLAY_NAME_OCTETS} bytes")
    return cleaned


def check_attribute_key(key: object, field: str = "attributes") -> str:
    """``key`` if it can name an attribute (see the module's docstring)."""
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > MAX_KEY:
        raise MessageError(
            field,
            f"{key!r} is not an attribute name: a letter, then letters, digits and '_', at "
            f"most {MAX_KEY} characters (it is used as {{{{ contact.<name> }}}})",
        )
    if key in RESERVED_KEYS:
        raise MessageError(
            field,
            f"{key!r} cannot name an attribute (reserved: {', '.join(sorted(RESERVED_KEYS))})",
        )
    return key


def check_attributes(
    attributes: object, field: str = "attributes"
) -> dict[str, AttributeValue | None]:
    """Attributes given by a caller (the API, the CLI), checked key by key and value by
    value; ``None`` values stay (they remove a key when the change is written)."""
    if not isinstance(attributes, Mapping):
        raise MessageError(
            field, f"must be an object of name: value, not a {type(attributes).__name__}"
        )
    if len(attributes) > MAX_ATTRIBUTES:
        raise MessageError(field, f"{len(attributes)} attributes; at most {MAX_ATTRIBUTES}")
    checked: dict[str, AttributeValue | None] = {}
    for key, value in attributes.items():
        check_attribute_key(key, field)
        where = f"{field}.{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageError(where, f"{value} is not a number JSON can hold")
        if isinstance(value, str) and _NOT_IN_VALUE.search(value):
            raise MessageError(where, "holds a NUL character or undecodable text")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise MessageError(
                where,
                f"a {type(value).__name__} is not an attribute value: give a string, a "
                "number or true/false (null removes the attribute)",
            )
        checked[key] = value
    return checked


def attributes_json(attributes: Mapping[str, AttributeValue]) -> str:
    """``attributes`` as stored: compact JSON, within the bounds of the module's docstring."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise MessageError(
            "attributes", f"would have {len(attributes)} attributes; at most {MAX_ATTRIBUTES}"
        )
    text = _JSON.encode(attributes)
    # A character is at most 4 bytes in UTF-8: most texts are measured without encoding them.
    if len(text) * 4 > MAX_ATTRIBUTES_BYTES and len(text.encode()) > MAX_ATTRIBUTES_BYTES:
        raise MessageError(
            "attributes",
            f"would be {len(text.encode())} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}",
        )
    return text


def contact_from_row(row: Mapping[str, Any]) -> Contact:
    """A :class:`Contact` from a row of :mod:`mailroom.outbox.list_queries`."""
    attributes = row["attributes"]
    return Contact(
        id=row["id"],
        list_id=row["list_id"],
        address=row["address"],
        name=row["name"],
        attributes=dict(attributes) if isinstance(attributes, Mapping) else {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A write of contacts made ready before its transaction (:func:`prepare_write`)."""

    list_id: int
    changes: Sequence[ContactChange]
    positions: list[int]
    """The changes the statements write, by their position."""
    new_rows: q.PreparedRows
    """The statements adding the addresses the list does not have."""
    refused: dict[int, MessageError]
    now: float
    dialect: Dialect


def write_contacts(
    connection: Connection, list_id: int, changes: Sequence[ContactChange], now: float
) -> WriteOutcome:
    """Write ``changes`` (no address twice) to the list in the caller's transaction: each new
    address is added, each known one updated (see the module's docstring). A change that
    would leave a contact's attributes over their bounds is not written; its position is in
    the outcome with why."""
    return write_prepared(connection, prepare_write(connection.dialect, list_id, changes, now))


def prepare_write(
    dialect: Dialect, list_id: int, changes: Sequence[ContactChange], now: float
) -> PreparedWrite:
    """:func:`write_contacts` up to the database: each change checked, its row and the
    statements adding it built (an import builds the next batch's while the database writes
    this one's, see :mod:`mailroom.campaigns.contacts_import`)."""
    rows: list[q.ContactValues] = []
    positions: list[int] = []
    refused: dict[int, MessageError] = {}
    for index, change in enumerate(changes):
        name = change.name
        try:
            # A change over the bounds on its own is over them merged with anything.
            text = attributes_json(_without_none(change.attributes))
        except MessageError as exc:
            refused[index] = exc
            continue
        rows.append((change.address, None if name is KEEP else name, text))
        positions.append(index)
    new_rows = q.prepare_rows(dialect, list_id, rows, now)
    return PreparedWrite(list_id, changes, positions, new_rows, refused, now, dialect)


def write_prepared(connection: Connection, prepared: PreparedWrite) -> WriteOutcome:
    """Run a :func:`prepare_write` in the caller's transaction."""
    # The new addresses are added first, reading nothing; only the changes whose address the
    # list had (none, in a first import) are then read under lock, merged and written again.
    # The contacts just added are told from those by their ids, higher than any before. (On
    # PostgreSQL, a contact another transaction adds meanwhile with one of these addresses
    # has a higher id too: it is kept as that one wrote it.)
    before = q.last_contact_id(connection)
    created = q.write_rows(connection, prepared.new_rows)
    refused = dict(prepared.refused)
    if created == prepared.new_rows.rows:
        return WriteOutcome(created=created, updated=0, refused=refused)
    changes = prepared.changes
    addresses = [changes[index].address for index in prepared.positions]
    existing = q.contacts_by_address(
        connection, prepared.list_id, addresses, lock=True, up_to_id=before
    )
    updates: list[q.ContactValues] = []
    for index in prepared.positions:
        change = changes[index]
        old = existing.get(change.address)
        if old is None:
            continue  # added above
        try:
            text = attributes_json(_merged(old.attributes, change.attributes))
        except MessageError as exc:
            refused[index] = exc
            continue
        name = change.name
        updates.append((change.address, old.name if name is KEEP else name, text))
    q.write_rows(
        connection,
        q.prepare_rows(prepared.dialect, prepared.list_id, updates, prepared.now, update=True),
    )
    return WriteOutcome(created=created, updated=len(updates), refused=refused)


def _without_none(given: Mapping[str, AttributeValue | None]) -> Mapping[str, AttributeValue]:
    if None not in given.values():
        return cast("Mapping[str, AttributeValue]", given)
    return {key: value for key, value in given.items() if value is not None}


def _merged(
    stored: Mapping[str, Any] | None, given: Mapping[str, AttributeValue | None]
) -> Mapping[str, AttributeValue]:
    if not stored:
        return _without_none(given)
    merged = dict(stored)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged

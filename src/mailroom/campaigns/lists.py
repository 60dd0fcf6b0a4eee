"""Mailing lists and their contacts: what ``mailroom lists`` and the API call.

A list has a name like a notification type's (lower-case letters, digits, ``-``, ``_`` and
dots between them; at most :data:`NAME_MAX` characters): it appears in URLs, in a
campaign's ``List-Id`` and in its consent scope, ``list:<name>``
(:func:`mailroom.consent.list_scope`), which an unsubscribe from the list's mail records.
Deleting a list deletes its contacts, not those unsubscribes: a list made again under the same
name still honours them.

Adding a contact is an upsert by its normalised address; what a contact holds and how a change
is merged into it is in :mod:`mailroom.campaigns.contacts`. Reads take a connection (the
caller's transaction; the fan-out pages a list with :func:`contact_page`), changes an engine
(each is one transaction of its own).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mailroom.campaigns.contacts import (
    KEEP,
    AttributeValue,
    Contact,
    Keep,
    attributes_json,
    check_attributes,
    check_contact_name,
    contact_from_row,
    parse_contact_address,
    write_contacts,
)
from mailroom.consent.scopes import list_scope, normalize_address
from mailroom.errors import MailroomError, MessageError
from mailroom.outbox import list_queries as q

__all__ = [
    "DESCRIPTION_MAX",
    "NAME_MAX",
    "AddResult",
    "ContactInput",
    "ContactNotFoundError",
    "ContactsError",
    "ListExistsError",
    "ListNotFoundError",
    "MailingList",
    "add_contact",
    "add_contacts",
    "all_lists",
    "check_list_name",
    "contact_page",
    "create_list",
    "delete_list",
    "find_list",
    "get_contact",
    "remove_contact",
    "remove_contacts",
    "update_contact",
]

NAME_MAX = 100
"""The longest list name (the width of its column)."""
DESCRIPTION_MAX = 1000
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*(?:\.[a-z0-9_\-]+)*\Z")


class ListNotFoundError(MailroomError, LookupError):
    """No mailing list has that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"there is no mailing list named {name!r}")
        self.name = name


class ListExistsError(MailroomError, ValueError):
    """A mailing list already has that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a mailing list named {name!r} already exists")
        self.name = name


class ContactNotFoundError(MailroomError, LookupError):
    """The list has no contact with that address."""

    def __init__(self, list_name: str, address: str) -> None:
        super().__init__(f"the list {list_name!r} has no contact {address!r}")
        self.list_name = list_name
        self.address = address


class ContactsError(MailroomError, ValueError):
    """Contacts of an all-or-nothing add cannot be written as given, so none was.

    ``errors`` maps each faulty contact's position (from 0) to why, every one of them.
    """

    def __init__(self, errors: Mapping[int, MessageError]) -> None:
        self.errors = dict(sorted(errors.items()))
        first, why = next(iter(self.errors.items()))
        more = len(self.errors) - 1
        also = f" (and {more} more)" if more else ""
        super().__init__(f"contact {first}: {why}{also}; no contact was written")


@dataclass(frozen=True, slots=True)
class MailingList:
    """A mailing list, with how many contacts it had when it was read."""

    id: int
    name: str
    description: str | None
    created_at: float
    contacts: int

    @property
    def scope(self) -> str:
        """Its consent scope: ``list:<name>``."""
        return list_scope(self.name)


@dataclass(frozen=True, slots=True)
class ContactInput:
    """A contact as a caller gives it, unchecked: ``address`` as written (``Ada <ada@x>``
    too), ``name`` (:data:`~mailroom.campaigns.contacts.KEEP`: as it is; ``None``: none),
    ``attributes`` to set (a ``None`` value removes that key)."""

    address: str
    name: str | Literal[Keep.KEEP] | None = KEEP
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AddResult:
    """How many contacts an add created, and how many it updated."""

    created: int
    updated: int


@dataclass(frozen=True, slots=True)
class _Change:
    address: str
    name: str | Literal[Keep.KEEP] | None
    attributes: Mapping[str, AttributeValue | None]


# -- lists ----------------------------------------------------------------------------------


def check_list_name(name: str) -> str:
    """``name`` itself if it can name a list; else :class:`~mailroom.errors.MessageError`."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > NAME_MAX:
        raise MessageError(
            "list name",
            f"{name!r} is not a list name: lower-case letters, digits, '-' and '_', with dots "
            f"between them (like news or course.cs101-2026), at most {NAME_MAX} characters",
        )
    return name


def create_list(
    engine: Engine, name: str, *, description: str | None = None, now: float | None = None
) -> MailingList:
    """Create an empty list; :class:`ListExistsError` if the name is taken."""
    check_list_name(name)
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise MessageError("description", f"at most {DESCRIPTION_MAX} characters")
    now = time.time() if now is None else now
    try:
        with engine.begin() as connection:
            if q.list_row(connection, name) is not None:
                raise ListExistsError(name)
            list_id = q.insert_list(connection, name=name, description=description, now=now)
    except IntegrityError:  # made at the same moment by someone else
        raise ListExistsError(name) from None
    return MailingList(list_id, name, description, now, 0)


def find_list(connection: Connection, name: str) -> MailingList:
    """The list named ``name``, with its count of contacts; :class:`ListNotFoundError`."""
    row = q.list_row(connection, name)
    if row is None:
        raise ListNotFoundError(name)
    return _mailing_list(row, q.count_contacts(connection, row["id"]))


def all_lists(connection: Connection) -> list[MailingList]:
    """Every list by name, each with its count of contacts."""
    return [_mailing_list(row, row["contacts"]) for row in q.lists_with_counts(connection)]


def delete_list(engine: Engine, name: str) -> int:
    """Delete the list and its contacts (not its unsubscribes); how many contacts it had."""
    with engine.begin() as connection:
        return q.delete_list(connection, _list_id(connection, name))


# -- contacts -------------------------------------------------------------------------------


def add_contact(
    engine: Engine,
    list_name: str,
    address: str,
    *,
    name: str | Literal[Keep.KEEP] | None = KEEP,
    attributes: Mapping[str, object] | None = None,
    now: float | None = None,
) -> tuple[Contact, bool]:
    """Add one contact, or update it if its address is on the list already; the contact as
    stored, and whether it was new."""
    change = _checked(ContactInput(address, name, attributes or {}))
    now = time.time() if now is None else now
    with engine.begin() as connection:
        list_id = _list_id(connection, list_name)
        outcome = write_contacts(connection, list_id, [change], now)
        if outcome.refused:
            raise outcome.refused[0]
        row = q.contact_row(connection, list_id, change.address)
    assert row is not None  # noqa: S101 - written in this transaction
    return contact_from_row(row), outcome.created == 1


def add_contacts(
    engine: Engine, list_name: str, contacts: Sequence[ContactInput], *, now: float | None = None
) -> AddResult:
    """Add (or update) many contacts in one transaction, all or none: if any cannot be
    written as given (or names an address given before it), :class:`ContactsError` says
    which and why, every one of them."""
    errors: dict[int, MessageError] = {}
    changes: list[_Change] = []
    first_at: dict[str, int] = {}
    for index, given in enumerate(contacts):
        try:
            change = _checked(given)
        except MessageError as exc:
            errors[index] = exc
            continue
        if change.address in first_at:
            errors[index] = MessageError(
                "address", f"{change.address} is contact {first_at[change.address]} already"
            )
            continue
        first_at[change.address] = index
        changes.append(change)
    if errors:
        raise ContactsError(errors)
    now = time.time() if now is None else now
    with engine.begin() as connection:
        outcome = write_contacts(connection, _list_id(connection, list_name), changes, now)
        if outcome.refused:
            raise ContactsError(
                {first_at[changes[i].address]: why for i, why in outcome.refused.items()}
            )
    return AddResult(outcome.created, outcome.updated)


def update_contact(
    engine: Engine,
    list_name: str,
    address: str,
    *,
    name: str | Literal[Keep.KEEP] | None = KEEP,
    attributes: Mapping[str, object] | None = None,
    now: float | None = None,
) -> Contact:
    """Change a contact already on the list: ``name`` replaces its name (unless
    :data:`~mailroom.campaigns.contacts.KEEP`), ``attributes`` (unless ``None``) replace all
    of its attributes (``None`` values are left out). :class:`ContactNotFoundError` if the
    address is not on the list."""
    normalized = normalize_address(address)
    values: dict[str, object] = {}
    if name is not KEEP:
        values["name"] = None if name is None else check_contact_name(name)
    if attributes is not None:
        checked = check_attributes(attributes)
        kept = {key: value for key, value in checked.items() if value is not None}
        attributes_json(kept)  # within the bounds
        values["attributes"] = kept
    now = time.time() if now is None else now
    with engine.begin() as connection:
        list_id = _list_id(connection, list_name)
        if values:
            q.update_contact(connection, list_id, normalized, values, now)
        row = q.contact_row(connection, list_id, normalized)
    if row is None:
        raise ContactNotFoundError(list_name, normalized)
    return contact_from_row(row)


def get_contact(connection: Connection, list_name: str, address: str) -> Contact:
    """One contact of the list, by address (in any form); :class:`ContactNotFoundError`."""
    normalized = normalize_address(address)
    row = q.contact_row(connection, _list_id(connection, list_name), normalized)
    if row is None:
        raise ContactNotFoundError(list_name, normalized)
    return contact_from_row(row)


def remove_contact(engine: Engine, list_name: str, address: str) -> bool:
    """Remove one address (in any form) from the list; whether it was on it."""
    return remove_contacts(engine, list_name, [address]) == 1


def remove_contacts(engine: Engine, list_name: str, addresses: Sequence[str]) -> int:
    """Remove these addresses (in any form) from the list; how many were on it. An address
    that cannot be read is :class:`~mailroom.errors.MessageError`, and nothing is removed."""
    normalized = [normalize_address(address) for address in addresses]
    with engine.begin() as connection:
        return q.delete_contacts(connection, _list_id(connection, list_name), normalized)


def contact_page(
    connection: Connection, list_id: int, *, after_id: int | None, limit: int
) -> list[Contact]:
    """Up to ``limit`` contacts of the list in id order, after the contact ``after_id``:
    what a fan-out pages a list by, saving the last id it wrote as its checkpoint."""
    return [
        contact_from_row(row)
        for row in q.contact_page(connection, list_id, after_id=after_id, limit=limit)
    ]


def _list_id(connection: Connection, name: str) -> int:
    row = q.list_row(connection, name)
    if row is None:
        raise ListNotFoundError(name)
    return int(row["id"])


def _mailing_list(row: Mapping[str, Any], contacts: int) -> MailingList:
    return MailingList(
        id=int(row["id"]),
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        contacts=int(contacts),
    )


def _checked(given: ContactInput) -> _Change:
    """A caller's contact, checked and normalised."""
    address, display_name = parse_contact_address(given.address)
    name = given.name
    if name is KEEP and display_name:
        name = display_name  # "Ada <ada@example.com>" names the contact
    if isinstance(name, str):
        name = check_contact_name(name)
    return _Change(address, name, check_attributes(given.attributes))

"""Who a notification is for: :class:`Recipient` made from whatever the app passes (an address,
an :class:`~mailroom.message.Address`, a user object), a person's name, and the actor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailroom.consent.scopes import normalize_address
from mailroom.errors import MessageError
from mailroom.message import Address, without_bidi_overrides

__all__ = [
    "Recipient",
    "actor_of",
    "named_recipients",
    "normalized_or_none",
    "person_name",
    "recipient_or_unparsed",
]


@dataclass(frozen=True, slots=True)
class Recipient:
    """Someone to notify: an address (maybe none), a name, and the app's key for them."""

    email: str | None
    name: str = ""
    key: str | None = None
    """The app's stable id for the person (``"user:42"``): preferences follow it when the
    address changes. Without it, preferences are kept by address."""

    @classmethod
    def of(cls, value: object) -> Recipient:
        """Accept a Recipient, an address string (``"Ada <ada@x>"``), an Address, or a user
        object with ``email`` and optionally ``get_full_name()``/``name`` and ``pk``/``id``
        (a Django user works as it is)."""
        if isinstance(value, Recipient):
            return value
        if isinstance(value, Address):
            return cls(value.addr_spec, value.display_name)
        if isinstance(value, str):
            address = Address.parse(value, "to")
            return cls(address.addr_spec, address.display_name)
        if value is None:
            return cls(None)
        email = getattr(value, "email", None)
        key = getattr(value, "pk", None) or getattr(value, "id", None)
        return cls(
            str(email) if email else None,
            person_name(value),
            f"{type(value).__name__.lower()}:{key}" if key is not None else None,
        )

    def describe(self) -> str:
        """How the notification log names this recipient."""
        return self.email or self.key or self.name or "(unnamed recipient)"


def person_name(value: object) -> str:
    """The name a user object (or a string) gives for a person, or ``""``."""
    if isinstance(value, str):
        return value
    full_name = getattr(value, "get_full_name", None)
    if callable(full_name):
        name = full_name()
        if name:
            return str(name)
    for attribute in ("name", "full_name", "display_name", "username"):
        name = getattr(value, attribute, None)
        if isinstance(name, str) and name:
            return name
    return ""


def recipient_or_unparsed(value: object) -> Recipient:
    """``Recipient.of(value)``; an address string it cannot parse is kept as it is, to be
    skipped (and logged) on its own rather than failing the whole call."""
    try:
        return Recipient.of(value)
    except MessageError:
        if isinstance(value, str):
            return Recipient(value)
        raise


def actor_of(actor: object) -> tuple[Recipient | None, str]:
    """The actor as a recipient (to leave them out) and the name the sender line shows.

    A string is a name ("Ada Lovelace") or an address ("Ada Lovelace <ada@x>")."""
    if actor is None:
        return None, ""
    if isinstance(actor, str) and "@" not in actor:
        return None, " ".join(without_bidi_overrides(actor).split())
    person = Recipient.of(actor)
    return person, without_bidi_overrides(person.name)


def normalized_or_none(address: str | None) -> str | None:
    """``address`` normalised, or ``None`` when there is none or it does not parse."""
    if not address:
        return None
    try:
        return normalize_address(address)
    except MessageError:
        return None


def named_recipients(to: Iterable[object] | object) -> list[Recipient]:
    """The recipients a ``notify`` call names: one value (an address, a user object) or an
    iterable of them; ``None`` names nobody. Unparsable address strings are kept, to be
    skipped one by one."""
    named: list[object]
    if to is None or isinstance(to, str | Address | Recipient):
        named = [] if to is None else [to]
    elif isinstance(to, Iterable):
        named = list(to)
    else:
        named = [to]  # one user object
    return [recipient_or_unparsed(value) for value in named]

"""The scope vocabulary of consent, and the one form addresses are compared in.

A scope names what a suppression or an unsubscribe covers: ``all`` (every message),
``type:<name>`` (one notification type) or ``list:<name>`` (one mailing list).
"""

from __future__ import annotations

from mailroom.errors import MessageError
from mailroom.message import Address

__all__ = ["SCOPE_ALL", "check_scope", "list_scope", "normalize_address", "type_scope"]

SCOPE_ALL = "all"
_SCOPE_MAX = 200  # the width of the scope columns


def type_scope(notification_type: str) -> str:
    """The scope of one notification type: ``type:<name>``."""
    return f"type:{notification_type}"


def list_scope(name: str) -> str:
    """The scope of one mailing list: ``list:<name>``."""
    return f"list:{name}"


def check_scope(scope: str) -> str:
    """``scope`` itself if it is ``all``, ``type:<name>`` or ``list:<name>``; else
    :class:`~mailroom.errors.MessageError`."""
    kind, _, name = scope.partition(":")
    if scope == SCOPE_ALL or (kind in ("type", "list") and name and len(scope) <= _SCOPE_MAX):
        return scope
    raise MessageError("scope", f"{scope!r} is not 'all', 'type:<name>' or 'list:<name>'")


def normalize_address(address: str | Address) -> str:
    """The form an address is stored and compared in: the addr-spec, lower-cased.

    Local parts are case-sensitive in theory (RFC 5321 §2.4) and never in practice; an
    unsubscribe from ``Ada@Example.com`` must also stop mail to ``ada@example.com``.
    """
    return Address.parse(address).addr_spec.lower()

"""The type checks on a :class:`~mailroom.message.model.Message`'s fields, made before
anything is built from them: a ``str`` where a ``str`` is documented, not ``bytes`` or an
``int``, and text of valid Unicode."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from mailroom.errors import MessageError
from mailroom.message.address import SURROGATES
from mailroom.message.model import Attachment, Message

__all__ = ["check_fields"]


def _check_text(field_name: str, value: object, *, optional: bool = False) -> None:
    """A str (or None where optional) of valid Unicode, or a MessageError naming the field."""
    if isinstance(value, str):
        if not value.isascii() and SURROGATES.search(value):
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


def check_fields(message: Message) -> Message:
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

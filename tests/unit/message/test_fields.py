"""Wrong Python types in a Message are a MessageError naming the field."""

from __future__ import annotations

import pytest

from mailroom.errors import InvalidAddressError, MessageError
from mailroom.message import Attachment, Message
from support.envelopes import build


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject": b"x"}, "subject"),
        ({"subject": 1}, "subject"),
        ({"text": b"x"}, "text"),
        ({"html": ["x"]}, "html"),
        ({"subject": "\udcff"}, "subject"),
        ({"to": 1}, "to"),
        ({"to": b"a@example.com"}, "to"),
        ({"bcc": [1]}, "bcc"),
        ({"headers": {"X-A": b"1"}}, "header X-A"),
        ({"headers": {1: "x"}}, "header names"),
        ({"attachments": Attachment("a", b"x")}, "attachments"),
        ({"attachments": ["a.txt"]}, "attachments"),
        ({"attachments": [Attachment(b"a.txt", b"x")]}, "attachment filename"),  # type: ignore[arg-type]
        ({"attachments": [Attachment("a.txt", "x")]}, "attachment content"),  # type: ignore[arg-type]
        ({"attachments": [Attachment("a.txt", b"x", None)]}, "attachment mimetype"),  # type: ignore[arg-type]
        ({"message_id": 5}, "message_id"),
        ({"date": 1700000000}, "date"),
    ],
)
def test_wrong_types_are_message_errors_naming_the_field(
    fields: dict[str, object], field: str
) -> None:
    with pytest.raises(MessageError) as caught:
        build(Message(**{"to": ["a@example.com"], "text": "x", **fields}))  # type: ignore[arg-type]
    assert caught.value.field == field, caught.value


def test_none_means_empty_for_collections() -> None:
    envelope = build(
        Message(to=None, cc=["a@example.com"], text="x", headers=None, attachments=None)  # type: ignore[arg-type]
    )
    assert envelope.recipients == ("a@example.com",)
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(to=None, text="x"))  # type: ignore[arg-type]
    assert caught.value.field == "to"

"""The fast path against the general one for a Message-ID of 67 to 77 characters: what
make_message_id gives a sender whose domain has 31 to 41."""

from __future__ import annotations

import pytest

from mailroom.message import Message, build_envelope, mime_fast
from mailroom.message.ids import make_message_id


def general(message: Message) -> bytes:
    original = mime_fast.compose
    mime_fast.compose = lambda *args, **kwargs: None
    try:
        return build_envelope(message, default_from="app@example.com").data
    finally:
        mime_fast.compose = original


@pytest.mark.parametrize("domain", ["newsletters.university-of-example.edu", "mail.example.com"])
def test_a_long_message_id_is_written_as_the_email_package_writes_it(domain: str) -> None:
    message = Message(
        to=["b@example.com"],
        subject="Hi",
        text="t",
        html="<p>t</p>",
        from_email=f"news@{domain}",
        message_id=make_message_id(domain),
    )
    fast = build_envelope(message, default_from="app@example.com").data
    slow = general(message)

    def pick(data: bytes) -> list[bytes]:
        head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
        return [line for line in head if line.startswith((b"Message-ID", b" <"))]

    assert pick(fast) == pick(slow)

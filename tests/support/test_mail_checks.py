"""The shared message checks themselves fail on what they are meant to catch."""

from __future__ import annotations

import pytest

from mailroom.message import Message, build_envelope
from support.mail_checks import assert_well_formed


def good() -> bytes:
    return build_envelope(
        Message(to=["a@example.com"], subject="s", text="t"), default_from="b@example.com"
    ).data


def test_a_built_message_passes() -> None:
    assert assert_well_formed(good())["Subject"] == "s"


@pytest.mark.parametrize("header", [b"Date", b"Message-ID", b"From", b"MIME-Version"])
def test_a_missing_required_header_fails(header: bytes) -> None:
    data = b"\r\n".join(
        line for line in good().split(b"\r\n") if not line.startswith(header + b":")
    )
    with pytest.raises(AssertionError, match=header.decode()):
        assert_well_formed(data)


def test_a_long_line_and_a_missing_text_part_fail() -> None:
    head, _, body = good().partition(b"\r\n\r\n")
    with pytest.raises(AssertionError, match="999 octets"):
        assert_well_formed(head + b"\r\n\r\n" + b"x" * 999 + b"\r\n")
    html_only = build_envelope(
        Message(to=["a@example.com"], subject="s", html="<p>x</p>"), default_from="b@example.com"
    ).data
    with pytest.raises(AssertionError, match="text/plain"):
        assert_well_formed(html_only)
    assert body

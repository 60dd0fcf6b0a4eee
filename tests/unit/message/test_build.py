"""The envelope: recipients, sender, the headers every message has, line and size limits."""

from __future__ import annotations

import email.utils
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom.errors import InvalidAddressError, MessageTooLargeError
from mailroom.message import (
    MAX_LINE_OCTETS,
    Address,
    Attachment,
    Message,
    build_envelope,
    without_bidi_overrides,
)
from support.envelopes import addr_specs, build, header_chars, longest_line, parse, printable_chars


@pytest.mark.parametrize(
    "message",
    [
        Message(to=["a@example.com"], text="x"),
        Message(to=["a@example.com"], text="x", html="<p>x</p>"),
        Message(to=["a@example.com"], html="<p>x</p>"),
        Message(to=["a@example.com"], text="x", attachments=[Attachment("a", b"b")]),
    ],
)
def test_date_message_id_and_mime_version_always_present(message: Message) -> None:
    envelope = build(message)
    parsed = parse(envelope)
    assert parsed["MIME-Version"] == "1.0"
    assert len(parsed.get_all("MIME-Version", [])) == 1
    assert parsed["Date"].datetime is not None
    assert parsed["Message-ID"] == envelope.message_id
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", envelope.message_id)


def test_bcc_is_in_the_envelope_but_not_the_headers() -> None:
    envelope = build(
        Message(to=["a@example.com"], cc=["c@example.com"], bcc=["secret@example.com"], text="x")
    )
    assert envelope.recipients == ("a@example.com", "c@example.com", "secret@example.com")
    assert b"secret@example.com" not in envelope.data
    parsed = parse(envelope)
    assert parsed["Bcc"] is None
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["c@example.com"]


def test_bcc_only_message_is_accepted() -> None:
    envelope = build(Message(bcc=["secret@example.com"], text="x"))
    assert envelope.recipients == ("secret@example.com",)
    assert parse(envelope)["To"] is None


def test_recipients_are_deduplicated_in_order() -> None:
    envelope = build(
        Message(
            to=["a@example.com", "Ada <a@example.com>", "b@example.com"],
            cc=["b@example.com", "c@example.com"],
            bcc=["a@example.com", "d@example.com"],
            text="x",
        )
    )
    assert envelope.recipients == (
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    )


def test_reply_to_is_a_header_not_a_recipient() -> None:
    envelope = build(Message(to=["a@example.com"], reply_to=["Help <help@example.com>"], text="x"))
    assert envelope.recipients == ("a@example.com",)
    (reply_to,) = parse(envelope)["Reply-To"].addresses
    assert (reply_to.display_name, reply_to.addr_spec) == ("Help", "help@example.com")


def test_single_string_recipient_is_one_address() -> None:
    envelope = build(Message(to="a@example.com", text="x"))
    assert envelope.recipients == ("a@example.com",)


def test_default_from_is_used_when_from_email_is_none() -> None:
    envelope = build_envelope(
        Message(to=["a@example.com"], text="x"), default_from="Default <default@example.org>"
    )
    assert envelope.sender == "default@example.org"
    (sender,) = parse(envelope)["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Default", "default@example.org")
    assert envelope.message_id.endswith("@example.org>")


def test_from_email_overrides_default_from() -> None:
    envelope = build(Message(to=["a@example.com"], from_email="shop@example.net", text="x"))
    assert envelope.sender == "shop@example.net"
    assert parse(envelope)["From"].addresses[0].addr_spec == "shop@example.net"


def test_no_recipient_is_refused() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(text="x"))
    assert caught.value.field == "to"


@st.composite
def long_bodies(draw: st.DrawFn) -> str:
    """Bodies mixing ordinary text with unbroken lines far past 998 octets."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.text(max_size=200),
                st.builds(lambda c, n: c * n, st.sampled_from("xé€😀 "), st.integers(900, 4000)),
            ),
            max_size=5,
        )
    )
    return "\n".join(pieces)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    text=long_bodies(),
    html=st.one_of(st.none(), long_bodies()),
    subject=st.text(header_chars, max_size=2000),
    recipients=st.lists(addr_specs, max_size=60),
    # Bidi overrides in names are refused (test_bidi_overrides_in_display_names_are_refused).
    names=st.lists(st.text(header_chars, max_size=40).map(without_bidi_overrides), max_size=60),
    attachments=st.lists(
        st.builds(
            Attachment.from_bytes,
            # Files, not emails: message/rfc822 attachments have tests of their own.
            st.text(printable_chars, min_size=1, max_size=300).filter(
                lambda name: not name.lower().endswith((".eml", ".mht", ".mhtml", ".nws"))
            ),
            st.binary(max_size=3000),
        ),
        max_size=3,
    ),
    header_value=st.text(header_chars, max_size=1500),
)
def test_no_line_exceeds_998_octets(
    *,
    text: str,
    html: str | None,
    subject: str,
    recipients: list[str],
    names: list[str],
    attachments: list[Attachment],
    header_value: str,
) -> None:
    to = [Address.create(spec, name) for spec, name in zip(recipients, names, strict=False)]
    to.append(Address.create("last@example.com", "Last One"))
    envelope = build(
        Message(
            to=to,
            cc=recipients[:5],
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
            headers={"X-Long": header_value},
        )
    )
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    parsed = parse(envelope)
    assert str(parsed["Subject"]) == subject.strip()
    assert len(parsed["To"].addresses) == len(to)
    read_names = [a.get_filename() for a in parsed.iter_attachments()]
    # get_filename() strips the name it reads, and unquotes it as email.utils.unquote does
    # (a name written "<x>" comes back as x); the header carries it whole.
    assert read_names == [email.utils.unquote(a.filename.strip()) for a in attachments]
    for attachment, part in zip(attachments, parsed.iter_attachments(), strict=True):
        assert part.get_payload(decode=True) == attachment.content


def test_message_over_max_size_is_refused() -> None:
    message = Message(
        to=["a@example.com"], text="x", attachments=[Attachment("big.bin", b"\x00" * 10_000)]
    )
    size = len(build(message).data)
    with pytest.raises(MessageTooLargeError) as caught:
        build(message, max_size=10_000)
    assert caught.value.field == "message"
    assert "EMAIL_MAX_MESSAGE_SIZE" in str(caught.value)
    # The limit is on the built bytes; at exactly the size it fits. Sizes vary by a byte or
    # two between builds (the Message-ID and boundaries), so allow a small margin.
    assert len(build(message, max_size=size + 64).data) <= size + 64


def test_default_size_limit_allows_ordinary_attachments() -> None:
    message = Message(
        to=["a@example.com"], text="x", attachments=[Attachment("f.bin", b"\x01" * 1_000_000)]
    )
    assert len(build(message).data) > 1_000_000

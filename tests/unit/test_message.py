"""Tests for mailroom.message: MIME structure, addresses, header safety, line limits.

Every envelope is read back with the standard library's parser (``policy.default``), the
same way a receiving client would, so the tests check what a reader sees, not our strings.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailroom import domains as our_domains
from mailroom.errors import (
    HeaderInjectionError,
    InvalidAddressError,
    MessageError,
    MessageTooLargeError,
)
from mailroom.message import (
    MAX_DISPLAY_NAME_OCTETS,
    MAX_LINE_OCTETS,
    Address,
    Attachment,
    Envelope,
    Message,
    build_envelope,
    make_message_id,
    message_id_domain,
    without_bidi_overrides,
)

SENDER = "Mailroom <noreply@example.com>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def build(message: Message, **kwargs: int) -> Envelope:
    return build_envelope(message, default_from=SENDER, **kwargs)


def parse(envelope: Envelope) -> EmailMessage:
    parsed = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_block(envelope: Envelope) -> bytes:
    return envelope.data.split(b"\r\n\r\n", 1)[0]


def longest_line(envelope: Envelope) -> int:
    return max(len(line) for line in envelope.data.split(b"\r\n"))


BIDI_OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")


def collapse(value: str) -> str:
    return " ".join(value.split())


# -- strategies ---------------------------------------------------------------------------

# Anything a header may hold: every code point except CR, LF, NUL and lone surrogates.
header_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00")
header_text = st.text(header_chars, max_size=120)
# What file names and ids may hold: no control characters at all.
printable_chars = st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"])
breakers = st.sampled_from(["\r", "\n", "\x00", "\r\n"])

atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
local_parts = st.text(st.sampled_from(atext), min_size=1, max_size=20)
labels = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?\Z")
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]),
    st.lists(labels, min_size=1, max_size=3),
    st.sampled_from(["example", "test", "com", "org"]),
)
addr_specs = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)


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


# -- round trips --------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(name=st.text(header_chars, max_size=90), subject=header_text)
def test_display_name_and_subject_round_trip(name: str, subject: str) -> None:
    expected_name = collapse(name)
    if BIDI_OVERRIDES.search(name):
        with pytest.raises(InvalidAddressError) as refused:
            Address.create("ada@example.com", name, "to")
        assert refused.value.field == "to"
        return
    if len(expected_name.encode("utf-8")) > MAX_DISPLAY_NAME_OCTETS:
        with pytest.raises(MessageError) as caught:
            Address.create("ada@example.com", name)
        assert "display name" in caught.value.field
        return
    to = Address.create("ada@example.com", name, "to")
    sender = Address.create("noreply@example.com", name, "from_email")
    envelope = build(
        Message(to=[to, "bob@example.com"], from_email=sender, subject=subject, text="hi")
    )
    parsed = parse(envelope)
    to_header = parsed["To"].addresses
    assert [a.display_name for a in to_header] == [expected_name, ""]
    assert [a.addr_spec for a in to_header] == ["ada@example.com", "bob@example.com"]
    (from_address,) = parsed["From"].addresses
    assert from_address.display_name == expected_name
    assert from_address.addr_spec == "noreply@example.com"
    assert str(parsed["Subject"]) == subject.strip()
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    assert envelope.data.isascii()


@settings(max_examples=300, deadline=None)
@given(name=st.text(header_chars, max_size=60))
def test_display_name_round_trips_through_parse(name: str) -> None:
    """``"quoted name" <addr>`` as a string gives back the (collapsed) name."""
    expected = collapse(name)
    if len(expected.encode()) > MAX_DISPLAY_NAME_OCTETS:  # pragma: no cover - 60 chars max
        return
    if BIDI_OVERRIDES.search(name):
        return  # refused: test_bidi_overrides_in_display_names_are_refused
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    address = Address.parse(f'"{quoted}" <ada@example.com>', "to")
    assert address.display_name == expected
    assert address.addr_spec == "ada@example.com"
    (read_back,) = parse(build(Message(to=[address], text="x")))["To"].addresses
    assert read_back.display_name == expected


@settings(max_examples=300, deadline=None)
@given(value=header_text, name=st.from_regex(r"\AX-[A-Za-z0-9-]{1,20}\Z"))
def test_extra_header_value_round_trips(value: str, name: str) -> None:
    # Outer blanks do not survive unfolding (RFC 5322 §2.2.3); extra headers are not
    # stripped for the caller, so the property is stated for values without them.
    value = value.strip()
    envelope = build(Message(to=["a@example.com"], text="x", headers={name: value}))
    assert str(parse(envelope)[name]) == value
    assert longest_line(envelope) <= MAX_LINE_OCTETS


@pytest.mark.parametrize(
    "text",
    [
        "=?utf-8?q?abc?=",
        "Re: =?utf-8?b?w6k=?= and more",
        "About =?iso-8859-1?q?caf=E9?= encoding",
    ],
)
def test_text_that_looks_like_an_encoded_word_survives(text: str) -> None:
    """A literal ``=?...?=`` must not be decoded by the reader into something else."""
    to = Address.create("ada@example.com", text)
    parsed = parse(build(Message(to=[to], subject=text, text="x", headers={"X-Note": text})))
    assert str(parsed["Subject"]) == text
    assert parsed["To"].addresses[0].display_name == text
    assert str(parsed["X-Note"]) == text


def test_subject_is_stripped_and_keeps_inner_blanks() -> None:
    parsed = parse(build(Message(to=["a@example.com"], subject="  Hello   there  ", text="x")))
    assert str(parsed["Subject"]) == "Hello   there"


def test_subject_with_control_characters_is_an_encoded_word() -> None:
    subject = "bell\x07 tab\t del\x7f sep\u2028 end"
    envelope = build(Message(to=["a@example.com"], subject=subject, text="x"))
    assert b"=?utf-8?b?" in header_block(envelope)
    assert str(parse(envelope)["Subject"]) == subject


def test_display_name_whitespace_is_collapsed() -> None:
    address = Address.parse("  Ada \t  Lovelace   <ada@example.com>", "to")
    assert address.display_name == "Ada Lovelace"
    assert address.with_display_name("  Countess \u3000 of   Lovelace ").display_name == (
        "Countess of Lovelace"
    )


def test_display_name_at_the_cap_is_accepted_and_one_over_is_refused() -> None:
    at_cap = "é" * (MAX_DISPLAY_NAME_OCTETS // 2)
    address = Address.create("ada@example.com", at_cap)
    (read_back,) = parse(build(Message(to=[address], text="x")))["To"].addresses
    assert read_back.display_name == at_cap
    with pytest.raises(MessageError):
        Address.create("ada@example.com", at_cap + "a")
    with pytest.raises(MessageError):
        Address.parse(f"{'a' * (MAX_DISPLAY_NAME_OCTETS + 1)} <ada@example.com>", "to")
    with pytest.raises(MessageError):
        address.with_display_name("😀" * (MAX_DISPLAY_NAME_OCTETS // 4 + 1))


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]) | st.just("\n")))
def test_text_body_round_trips(text: str) -> None:
    envelope = build(Message(to=["a@example.com"], text=text))
    body = parse(envelope).get_content()
    assert isinstance(body, str)
    expected = text if text.endswith("\n") else text + "\n"
    assert body.replace("\r\n", "\n") == expected


# -- line length --------------------------------------------------------------------------


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
    # get_filename() strips the name it reads; the header carries it whole.
    assert read_names == [a.filename.strip() for a in attachments]
    for attachment, part in zip(attachments, parsed.iter_attachments(), strict=True):
        assert part.get_payload(decode=True) == attachment.content


def test_huge_unbroken_lines_are_encoded() -> None:
    envelope = build(
        Message(to=["a@example.com"], text="x" * 20_000, html="<p>" + "y" * 20_000 + "</p>")
    )
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    parsed = parse(envelope)
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().rstrip() == "x" * 20_000
    assert html.get_content().rstrip() == "<p>" + "y" * 20_000 + "</p>"


def test_ascii_policy_needs_no_8bitmime() -> None:
    envelope = build(Message(to=["a@example.com"], subject="Grüße", text="Grüße, 世界"))
    assert envelope.data.isascii()
    assert not envelope.smtputf8
    assert parse(envelope).get_content().rstrip() == "Grüße, 世界"


# -- header injection ---------------------------------------------------------------------


def inject(value: str, breaker: str, position: int) -> str:
    at = position % (len(value) + 1)
    return value[:at] + breaker + value[at:]


INJECTABLE = {
    "subject": lambda v: Message(to=["a@example.com"], subject=v, text="x"),
    "to": lambda v: Message(to=[v], text="x"),
    "cc": lambda v: Message(to=["a@example.com"], cc=[v], text="x"),
    "bcc": lambda v: Message(to=["a@example.com"], bcc=[v], text="x"),
    "reply_to": lambda v: Message(to=["a@example.com"], reply_to=[v], text="x"),
    "from_email": lambda v: Message(to=["a@example.com"], from_email=v, text="x"),
    "message_id": lambda v: Message(to=["a@example.com"], message_id=v, text="x"),
    "header X-Custom": lambda v: Message(to=["a@example.com"], headers={"X-Custom": v}, text="x"),
    "attachment filename": lambda v: Message(
        to=["a@example.com"], text="x", attachments=[Attachment(v, b"data")]
    ),
    "attachment mimetype": lambda v: Message(
        to=["a@example.com"], text="x", attachments=[Attachment("a.bin", b"data", v)]
    ),
    "attachment content_id": lambda v: Message(
        to=["a@example.com"], html="<img>", attachments=[Attachment("a.png", PNG, "image/png", v)]
    ),
}
CLEAN_VALUES = {
    "subject": "Your order has shipped",
    "to": "Ada Lovelace <ada@example.com>",
    "cc": "Zoë <zoe@bücher.example>",
    "bcc": "bob@example.com",
    "reply_to": '"Support, Team" <support@example.com>',
    "from_email": "Shop <shop@example.com>",
    "message_id": "<abc.123@example.com>",
    "header X-Custom": "some value",
    "attachment filename": "résumé.pdf",
    "attachment mimetype": "application/pdf",
    "attachment content_id": "logo@example.com",
}


@pytest.mark.parametrize("field", sorted(INJECTABLE))
def test_clean_values_build(field: str) -> None:
    """The baseline for the injection test: without the break each field is accepted."""
    build(INJECTABLE[field](CLEAN_VALUES[field]))


@settings(max_examples=800, deadline=None)
@given(
    field=st.sampled_from(sorted(INJECTABLE)),
    breaker=breakers,
    position=st.integers(min_value=0),
    suffix=st.text(header_chars, max_size=20),
)
def test_line_breaks_in_any_header_field_are_refused(
    field: str, breaker: str, position: int, suffix: str
) -> None:
    value = inject(CLEAN_VALUES[field], breaker, position)
    if field not in {"to", "cc", "bcc", "reply_to", "from_email", "message_id"}:
        value += suffix  # e.g. "\r\nBcc: evil@example.net" after the break
    with pytest.raises(HeaderInjectionError) as caught:
        build(INJECTABLE[field](value))
    assert caught.value.field == field


@settings(max_examples=300, deadline=None)
@given(name=st.text(header_chars, max_size=30), breaker=breakers, position=st.integers(0))
def test_line_breaks_in_display_names_are_refused(name: str, breaker: str, position: int) -> None:
    bad = inject(name, breaker, position)
    with pytest.raises(HeaderInjectionError) as caught:
        Address.create("ada@example.com", bad, "to")
    assert caught.value.field == "to"
    with pytest.raises(HeaderInjectionError) as caught:
        Address.create("ada@example.com").with_display_name(bad)
    assert caught.value.field == "display name"


@settings(max_examples=200, deadline=None)
@given(breaker=breakers, position=st.integers(0))
def test_line_breaks_in_extra_header_names_are_refused(breaker: str, position: int) -> None:
    name = inject("X-Custom", breaker, position)
    with pytest.raises(HeaderInjectionError) as caught:
        build(Message(to=["a@example.com"], headers={name: "v"}, text="x"))
    assert caught.value.field.startswith("header")


@pytest.mark.parametrize("control", ["\x07", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\u2028"])
@pytest.mark.parametrize(
    "field",
    ["attachment filename", "attachment mimetype", "attachment content_id", "message_id"],
)
def test_control_characters_in_raw_values_are_refused(field: str, control: str) -> None:
    """Written as they are, these may hold no control character (the email package would
    raise a bare ValueError for some, drop or emit others raw)."""
    value = inject(CLEAN_VALUES[field], control, 3)
    with pytest.raises(MessageError) as caught:
        build(INJECTABLE[field](value))
    assert caught.value.field == field


def test_attachment_filename_with_tab_and_unicode_round_trips() -> None:
    name = "Quarterly\treport — €, «final» (2).pdf"
    parsed = parse(
        build(Message(to=["a@example.com"], text="x", attachments=[Attachment(name, b"x")]))
    )
    assert [p.get_filename() for p in parsed.iter_attachments()] == [name]


def test_trailing_dot_domain_is_normalised() -> None:
    envelope = build(Message(to=["ada@example.com."], text="x"))
    assert envelope.recipients == ("ada@example.com",)
    assert parse(envelope)["To"].addresses[0].addr_spec == "ada@example.com"
    with pytest.raises(InvalidAddressError):
        Address.parse("ada@example.com..")


@pytest.mark.parametrize(
    ("field", "address"),
    [
        ("to", Address("ada\r\nBcc: evil@example.net\r\nX", "example.com")),
        ("to", Address("ada", "example.com\r\nBcc: evil@example.net")),
        ("cc", Address("ada", "example.com", "Ada\r\nBcc: evil@example.net")),
        ("from_email", Address("a\x00da", "example.com")),
    ],
)
def test_address_objects_built_directly_are_checked_too(field: str, address: Address) -> None:
    """``Address(...)`` skips ``create``; the envelope must still refuse a line break."""
    message = {
        "to": Message(to=[address], text="x"),
        "cc": Message(to=["a@example.com"], cc=[address], text="x"),
        "from_email": Message(to=["a@example.com"], from_email=address, text="x"),
    }[field]
    with pytest.raises(HeaderInjectionError) as caught:
        build(message)
    assert caught.value.field == field


def test_address_objects_built_directly_are_validated() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(to=[Address("has space", "example.com")], text="x"))
    assert caught.value.field == "to"


# -- structure ----------------------------------------------------------------------------


def test_text_only_is_text_plain() -> None:
    parsed = parse(build(Message(to=["a@example.com"], subject="Hi", text="Hello")))
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert parsed.get_content().rstrip() == "Hello"


def test_no_body_at_all_is_an_empty_text_plain() -> None:
    parsed = parse(build(Message(to=["a@example.com"])))
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().strip() == ""


def test_html_only_is_text_html() -> None:
    parsed = parse(build(Message(to=["a@example.com"], html="<b>Hi</b>")))
    assert parsed.get_content_type() == "text/html"


def test_text_and_html_are_multipart_alternative() -> None:
    parsed = parse(build(Message(to=["a@example.com"], text="Hello", html="<p>Hello</p>")))
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # RFC 2046 §5.1.4: best last


@pytest.mark.parametrize("filename", ["report.pdf", "résumé 2024.pdf", "отчёт.txt", "数据.csv"])
def test_attachments_make_multipart_mixed(filename: str) -> None:
    attachment = Attachment.from_bytes(filename, b"%PDF-1.7 \x00\xff binary")
    parsed = parse(
        build(
            Message(
                to=["a@example.com"], text="see file", html="<p>x</p>", attachments=[attachment]
            )
        )
    )
    assert parsed.get_content_type() == "multipart/mixed"
    first, *rest = list(parsed.iter_parts())
    assert first.get_content_type() == "multipart/alternative"
    (part,) = rest
    assert part.get_filename() == filename
    assert part.get_content_disposition() == "attachment"
    assert part.get_payload(decode=True) == attachment.content


def test_inline_image_sits_with_html_in_multipart_related() -> None:
    logo = Attachment("logo.png", PNG, "image/png", content_id="logo@example.com")
    envelope = build(
        Message(
            to=["a@example.com"],
            text="plain",
            html='<img src="cid:logo@example.com">',
            attachments=[logo, Attachment.from_bytes("terms.txt", b"terms")],
        )
    )
    parsed = parse(envelope)
    assert parsed.get_content_type() == "multipart/mixed"
    alternative = next(parsed.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    plain, related = list(alternative.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = list(related.iter_parts())
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == "<logo@example.com>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG
    assert [a.get_filename() for a in parsed.iter_attachments()] == ["terms.txt"]


def test_inline_image_with_html_only() -> None:
    logo = Attachment("logo.png", PNG, "image/png", content_id="<logo>")
    parsed = parse(build(Message(to=["a@example.com"], html="<img>", attachments=[logo])))
    assert parsed.get_content_type() == "multipart/related"
    html, image = list(parsed.iter_parts())
    assert html.get_content_type() == "text/html"
    assert image["Content-ID"] == "<logo>"


def test_inline_image_without_html_is_refused() -> None:
    logo = Attachment("logo.png", PNG, "image/png", content_id="logo")
    with pytest.raises(MessageError) as caught:
        build(Message(to=["a@example.com"], text="x", attachments=[logo]))
    assert caught.value.field == "attachments"


@pytest.mark.parametrize(
    ("filename", "mimetype"),
    [
        ("photo.png", "image/png"),
        ("invoice.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
        ("blob.unknownext", "application/octet-stream"),
        ("no_extension", "application/octet-stream"),
    ],
)
def test_attachment_from_path_guesses_mimetype(
    tmp_path: Path, filename: str, mimetype: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(b"content of " + filename.encode())
    attachment = Attachment.from_path(path)
    assert attachment.filename == filename
    assert attachment.mimetype == mimetype
    assert attachment.content == path.read_bytes()
    assert attachment.content_id is None
    assert Attachment.from_path(str(path), mimetype="text/csv").mimetype == "text/csv"
    assert Attachment.from_path(path, content_id="c1").content_id == "c1"
    parsed = parse(build(Message(to=["a@example.com"], text="x", attachments=[attachment])))
    (part,) = parsed.iter_attachments()
    assert part.get_content_type() == mimetype
    assert part.get_filename() == filename


def test_attachment_from_bytes_guesses_mimetype() -> None:
    assert Attachment.from_bytes("a.png", b"").mimetype == "image/png"
    assert Attachment.from_bytes("a", b"").mimetype == "application/octet-stream"
    assert Attachment.from_bytes("a.png", b"", "image/gif").mimetype == "image/gif"


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


def test_message_id_domain_is_the_senders_idna_domain() -> None:
    envelope = build(Message(to=["a@example.com"], from_email="shop@bücher.example", text="x"))
    assert envelope.message_id.endswith("@xn--bcher-kva.example>")
    assert parse(envelope)["Message-ID"] == envelope.message_id


@pytest.fixture
def machine_named(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Make ``socket.getfqdn()`` say ``name``, asked afresh."""

    def name_it(name: str) -> None:
        monkeypatch.setattr(socket, "getfqdn", lambda *_: name)
        our_domains.forget_machine_fqdn()

    yield name_it
    our_domains.forget_machine_fqdn()


def test_message_id_domain_is_the_senders_when_the_machine_is_localhost(
    machine_named: Callable[[str], None],
) -> None:
    machine_named("localhost")
    envelope = build(Message(to=["a@example.com"], text="x"))
    assert envelope.message_id.endswith("@example.com>")


@pytest.mark.parametrize("sender", ["webmaster@localhost", "app@web1", "ops@localhost.localdomain"])
def test_an_unqualified_sender_domain_gives_the_machines_qualified_name(
    machine_named: Callable[[str], None], sender: str
) -> None:
    machine_named("mail.example.net")
    envelope = build(Message(to=["a@example.com"], text="x", from_email=sender))
    assert re.fullmatch(r"<[^<>@\s]+@mail\.example\.net>", envelope.message_id)
    assert parse(envelope)["From"] == sender  # only the id changes, never the sender


@pytest.mark.parametrize("domain", ["bücher.example", "BÜCHER.example", "xn--bcher-kva.example"])
def test_an_idn_sender_domain_is_qualified_in_its_ascii_form(
    machine_named: Callable[[str], None], domain: str
) -> None:
    machine_named("mail.example.net")
    assert message_id_domain(domain).lower() == "xn--bcher-kva.example"
    assert make_message_id(domain).lower().endswith("@xn--bcher-kva.example>")


def test_with_no_qualified_name_anywhere_the_senders_domain_stays(
    machine_named: Callable[[str], None],
) -> None:
    machine_named("localhost")
    envelope = build(Message(to=["a@example.com"], text="x", from_email="webmaster@localhost"))
    assert envelope.message_id.endswith("@localhost>")


def test_a_machine_name_lookup_that_hangs_costs_one_short_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def hanging_getfqdn(*_: object) -> str:
        release.wait(10)
        return "mail.example.net"

    monkeypatch.setattr(socket, "getfqdn", hanging_getfqdn)
    our_domains.forget_machine_fqdn()
    try:
        started = time.monotonic()
        ids = [
            build(Message(to=["a@example.com"], text="x", from_email="app@web1")).message_id
            for _ in range(20)
        ]
        assert time.monotonic() - started < 3  # one wait of at most a second, not twenty
        assert all(i.endswith("@web1>") for i in ids)
        release.set()
        deadline = time.monotonic() + 5
        while our_domains.machine_fqdn_once() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        after = build(Message(to=["a@example.com"], text="x", from_email="app@web1"))
        assert after.message_id.endswith("@mail.example.net>")  # the answer, once it came
    finally:
        release.set()
        our_domains.forget_machine_fqdn()


def test_message_ids_are_unique() -> None:
    ids = {build(Message(to=["a@example.com"], text="x")).message_id for _ in range(200)}
    assert len(ids) == 200


def test_given_message_id_and_date_are_kept() -> None:
    date = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
    envelope = build(
        Message(to=["a@example.com"], text="x", message_id="<fixed@example.org>", date=date)
    )
    parsed = parse(envelope)
    assert envelope.message_id == "<fixed@example.org>"
    assert parsed["Message-ID"] == "<fixed@example.org>"
    assert parsed["Date"].datetime == date


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


# -- addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "adaexample.com",
        "@example.com",
        "ada@",
        "ada@@example.com",
        "ada lovelace@example.com",
        "ada@exa mple.com",
        "ada@-example.com",
        "ada@example-.com",
        "ada@exa..mple.com",
        "ada@exa_mple.com",
        "ada.@example.com",
        ".ada@example.com",
        "a..da@example.com",
        "ada@" + "a" * 64 + ".com",
        "a" * 65 + "@example.com",
        "ada@" + ".".join(["abcdefghi"] * 26) + ".com",
        "Ada <>",
        "Ada <ada>",
        "",
        "   ",
        '"ada"@example.com',
        "ada@[192.0.2.1]",
    ],
)
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to", "from_email"])
def test_invalid_addresses_are_refused_naming_the_field(bad: str, field: str) -> None:
    kwargs: dict[str, object] = {"to": ["ok@example.com"], "text": "x"}
    kwargs[field] = bad if field == "from_email" else [bad]
    message = Message(**kwargs)  # type: ignore[arg-type]
    if field == "from_email" and not bad:  # empty means "use default_from", as in Django
        assert build(message).sender == "noreply@example.com"
        return
    with pytest.raises(InvalidAddressError) as caught:
        build(message)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_invalid_default_from_names_from_email() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build_envelope(Message(to=["a@example.com"], text="x"), default_from="not an address")
    assert caught.value.field == "from_email"


def test_non_string_address_is_refused() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        Address.parse(42, "to")  # type: ignore[arg-type]
    assert caught.value.field == "to"


@pytest.mark.parametrize(
    ("text", "display", "spec"),
    [
        ("ada@example.com", "", "ada@example.com"),
        ("  ada@example.com  ", "", "ada@example.com"),
        ("<ada@example.com>", "", "ada@example.com"),
        ("Ada Lovelace <ada@example.com>", "Ada Lovelace", "ada@example.com"),
        ('"Lovelace, Ada" <ada@example.com>', "Lovelace, Ada", "ada@example.com"),
        (
            '"Ada \\"The Countess\\" L." <ada@example.com>',
            'Ada "The Countess" L.',
            "ada@example.com",
        ),
        ("Zoë Ünïcode <zoe@example.com>", "Zoë Ünïcode", "zoe@example.com"),
        ("ada@EXAMPLE.COM", "", "ada@example.com"),
        ("first.last+tag@sub.example.co.uk", "", "first.last+tag@sub.example.co.uk"),
        ("o'brien@example.com", "", "o'brien@example.com"),
        ("ada@example.com.", "", "ada@example.com"),
    ],
)
def test_addresses_parse(text: str, display: str, spec: str) -> None:
    address = Address.parse(text, "to")
    assert address.display_name == display
    assert address.addr_spec == spec
    assert Address.parse(address) == address
    (read_back,) = parse(build(Message(to=[text], text="x")))["To"].addresses
    assert read_back.display_name == display
    assert read_back.addr_spec == spec


def test_address_str_is_a_header_form() -> None:
    assert str(Address.parse("Ada Lovelace <ada@example.com>")) == "Ada Lovelace <ada@example.com>"
    assert str(Address.parse("ada@example.com")) == "ada@example.com"


def test_non_ascii_domain_is_idna_encoded_and_needs_no_smtputf8() -> None:
    address = Address.parse("Bob <bob@bücher.example>", "to")
    assert address.domain == "xn--bcher-kva.example"
    assert address.addr_spec == "bob@xn--bcher-kva.example"
    assert not address.needs_smtputf8
    envelope = build(Message(to=["bob@bücher.example"], from_email="shop@bücher.example", text="x"))
    assert envelope.recipients == ("bob@xn--bcher-kva.example",)
    assert envelope.sender == "shop@xn--bcher-kva.example"
    assert not envelope.smtputf8
    assert envelope.data.isascii()
    assert b"bob@xn--bcher-kva.example" in envelope.data


def test_invalid_idna_domain_is_refused() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(to=["bob@b\u00fccher..example"], text="x"))
    assert caught.value.field == "to"


@pytest.mark.parametrize("local", ["δοκιμή", "用户", "josé", "ñandú.ñ"])
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "from_email", "reply_to"])
def test_non_ascii_local_part_needs_smtputf8(local: str, field: str) -> None:
    spec = f"{local}@example.com"
    assert Address.parse(spec).needs_smtputf8
    kwargs: dict[str, object] = {"to": ["a@example.com"], "text": "x"}
    kwargs[field] = spec if field == "from_email" else [spec]
    envelope = build(Message(**kwargs))  # type: ignore[arg-type]
    assert envelope.smtputf8
    if field == "bcc":
        assert spec.encode("utf-8") not in envelope.data
    else:
        assert spec.encode("utf-8") in envelope.data
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    if field == "from_email":
        assert envelope.sender == spec
    elif field != "reply_to":
        assert spec in envelope.recipients


def test_ascii_message_does_not_need_smtputf8() -> None:
    envelope = build(Message(to=["Zoë <zoe@example.com>"], subject="Grüße", text="é"))
    assert not envelope.smtputf8


@settings(max_examples=300, deadline=None)
@given(spec=addr_specs)
def test_valid_addresses_round_trip(spec: str) -> None:
    envelope = build(Message(to=[spec], text="x"))
    assert envelope.recipients == (spec,)
    (read_back,) = parse(envelope)["To"].addresses
    assert read_back.addr_spec == spec


# -- extra headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "CC",
        "Bcc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "content-transfer-encoding",
        "Content-Disposition",
    ],
)
def test_reserved_headers_are_refused(name: str) -> None:
    with pytest.raises(MessageError) as caught:
        build(Message(to=["a@example.com"], text="x", headers={name: "value"}))
    assert caught.value.field == f"header {name}"
    assert not isinstance(caught.value, HeaderInjectionError)


@pytest.mark.parametrize("name", ["", "X Custom", "X:Custom", "X-Cüstom", "X-\tTab", "X-\x7f"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(MessageError) as caught:
        build(Message(to=["a@example.com"], text="x", headers={name: "value"}))
    assert caught.value.field.startswith("header")


def test_custom_headers_appear() -> None:
    envelope = build(
        Message(
            to=["a@example.com"],
            text="x",
            headers={
                "X-Custom": "hello world",
                "X-Unicode": "Grüße 世界",
                "List-Id": "<news.example.com>",
            },
        )
    )
    parsed = parse(envelope)
    assert parsed["X-Custom"] == "hello world"
    assert str(parsed["X-Unicode"]) == "Grüße 世界"
    assert parsed["List-Id"] == "<news.example.com>"
    assert b"X-Custom: hello world\r\n" in header_block(envelope)


# -- size ---------------------------------------------------------------------------------


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


# -- attached emails and container types (RFC 2046 §5) --------------------------------------

FORWARDED = (
    "From: Ada <ada@example.com>\n"
    "To: bob@example.com\n"
    "Subject: the original\n"
    "Date: Mon, 07 Dec 2026 03:00:00 +0000\n"
    "Message-ID: <orig@example.com>\n"
    "\n"
    "first line\n"
    "second line\n"
)


def assert_crlf_only(data: bytes) -> None:
    """Every line ends in CRLF: no bare LF, no bare CR (RFC 5322 §2.3; Postfix >= 3.9
    refuses bare LF in DATA)."""
    assert data.endswith(b"\r\n")
    for number, line in enumerate(data.split(b"\r\n"), 1):
        assert b"\n" not in line, f"bare LF on line {number}"
        assert b"\r" not in line, f"bare CR on line {number}"


def attached_email(envelope: Envelope) -> EmailMessage:
    parsed = parse(envelope)
    assert parsed.defects == []
    (part,) = parsed.iter_attachments()
    assert isinstance(part, EmailMessage)
    assert part.get_content_type() == "message/rfc822"
    return part


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_attached_email_is_a_message_part_with_crlf_lines(newline: str) -> None:
    content = FORWARDED.replace("\n", newline).encode()
    eml = Attachment("original.eml", content, "message/rfc822")
    envelope = build(
        Message(to=["a@example.com"], subject="Fwd", text="see below", attachments=[eml])
    )
    assert_crlf_only(envelope.data)
    part = attached_email(envelope)
    # RFC 2046 §5.2.1: 7bit, 8bit or binary only, never base64.
    assert part["Content-Transfer-Encoding"] == "7bit"
    assert part.get_filename() == "original.eml"
    inner = part.get_content()
    assert isinstance(inner, EmailMessage)
    assert inner["Subject"] == "the original"
    assert inner["Message-ID"] == "<orig@example.com>"
    # The wire's CRLF, as the parser keeps it.
    assert inner.get_content() == "first line\r\nsecond line\r\n"
    assert longest_line(envelope) <= MAX_LINE_OCTETS


def test_attached_email_with_8bit_text_is_reencoded_for_a_7bit_message() -> None:
    content = (
        "From: zoe@example.com\nSubject: héllo\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\nbödy ✓\n"
    ).encode()
    envelope = build(
        Message(
            to=["a@example.com"],
            text="x",
            attachments=[Attachment("u.eml", content, "message/rfc822")],
        )
    )
    assert envelope.data.isascii()
    assert_crlf_only(envelope.data)
    part = attached_email(envelope)
    assert part["Content-Transfer-Encoding"] == "7bit"
    inner = part.get_content()
    assert inner.get_content().replace("\r\n", "\n") == "bödy ✓\n"


def test_attached_email_in_an_smtputf8_message_may_stay_8bit() -> None:
    content = "From: zoé@example.com\nSubject: héllo\n\nbödy\n".encode()
    envelope = build(
        Message(
            to=["josé@example.com"],
            text="x",
            attachments=[Attachment("u.eml", content, "message/rfc822")],
        )
    )
    assert envelope.smtputf8
    assert_crlf_only(envelope.data)
    part = attached_email(envelope)
    assert part["Content-Transfer-Encoding"] in {"7bit", "8bit"}
    assert "base64" not in str(part["Content-Transfer-Encoding"])


def test_eml_files_are_attached_as_emails(tmp_path: Path) -> None:
    path = tmp_path / "forwarded.eml"
    path.write_bytes(FORWARDED.encode())
    attachment = Attachment.from_path(path)
    assert attachment.mimetype == "message/rfc822"
    envelope = build(Message(to=["a@example.com"], text="x", attachments=[attachment]))
    assert_crlf_only(envelope.data)
    assert attached_email(envelope).get_content()["Subject"] == "the original"


@st.composite
def line_soup(draw: st.DrawFn) -> bytes:
    """Header and body lines of an email, ended by any mix of LF, CRLF and CR."""
    lines = draw(
        st.lists(st.text(st.characters(codec="ascii", exclude_categories=["Cc"])), max_size=8)
    )
    ends = draw(
        st.lists(
            st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines) + 3, max_size=len(lines) + 3
        )
    )
    head = ["From: ada@example.com", "Subject: soup", ""]
    return "".join(line + end for line, end in zip([*head, *lines], ends, strict=True)).encode()


@settings(max_examples=200, deadline=None)
@given(content=line_soup())
def test_attached_email_lines_always_end_in_crlf(content: bytes) -> None:
    eml = Attachment("soup.eml", content, "message/rfc822")
    envelope = build(Message(to=["a@example.com"], text="x", attachments=[eml]))
    assert_crlf_only(envelope.data)
    part = attached_email(envelope)
    assert part.get_content()["Subject"] == "soup"


@pytest.mark.parametrize(
    "mimetype",
    [
        "multipart/mixed",
        "multipart/alternative",
        "Multipart/Related",
        "message/partial",
        "message/external-body",
        "message/global",
        "message/delivery-status",
    ],
)
def test_container_types_are_refused_naming_the_attachment(mimetype: str) -> None:
    attachment = Attachment("bundle.bin", FORWARDED.encode(), mimetype)
    with pytest.raises(MessageError) as caught:
        build(Message(to=["a@example.com"], text="x", attachments=[attachment]))
    assert caught.value.field == "attachment mimetype"
    assert "'bundle.bin'" in str(caught.value)
    assert "application/octet-stream" in str(caught.value)


@pytest.mark.parametrize("mimetype", ["text", "text/plain; charset=utf-8", "/pdf", "a/b/c", ""])
def test_malformed_mimetypes_are_refused(mimetype: str) -> None:
    attachment = Attachment("a.txt", b"x", mimetype)
    with pytest.raises(MessageError) as caught:
        build(Message(to=["a@example.com"], text="x", attachments=[attachment]))
    assert caught.value.field == "attachment mimetype"
    assert "type/subtype" in str(caught.value)


def test_attached_email_that_is_not_one_is_refused() -> None:
    for content, words in [
        (b"", "no header fields"),
        (b"\njust a body\n", "no header fields"),
        (b"Subject: long\n\n" + b"x" * 1200 + b"\n", "line of 1200 octets"),
    ]:
        attachment = Attachment("x.eml", content, "message/rfc822")
        with pytest.raises(MessageError) as caught:
            build(Message(to=["a@example.com"], text="x", attachments=[attachment]))
        assert caught.value.field == "attachment content"
        assert words in str(caught.value)
        assert "'x.eml'" in str(caught.value)


# -- unsafe characters in addresses ---------------------------------------------------------

UNSAFE_IN_ADDRESSES = ["\x80", "\x85", "\x9f", "\u2028", "\u2029", "\u061c", "\u200e", "\u200f",
                       "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                       "\u2068", "\u2069"]  # fmt: skip


@pytest.mark.parametrize("char", UNSAFE_IN_ADDRESSES)
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to", "from_email"])
def test_unsafe_characters_in_local_parts_are_refused(char: str, field: str) -> None:
    bad = f"ad{char}a@example.com"
    kwargs: dict[str, object] = {"to": ["x@example.com"], "text": "x"}
    kwargs[field] = bad if field == "from_email" else [bad]
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(**kwargs))  # type: ignore[arg-type]
    assert caught.value.field == field
    assert f"U+{ord(char):04X}" in str(caught.value)
    assert char not in str(caught.value)  # shown escaped, never raw


@pytest.mark.parametrize("char", UNSAFE_IN_ADDRESSES)
def test_unsafe_characters_in_domains_are_refused(char: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        Address.parse(f"ada@exa{char}mple.com", "to")
    assert f"U+{ord(char):04X}" in str(caught.value)


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202d", "\u202e", "\u2066", "\u2069"])
def test_bidi_overrides_in_display_names_are_refused(char: str) -> None:
    """ "Ada <ada@x>" shown with an override before the address can reverse the address
    itself in a reader that shows both."""
    makers: list[Callable[[], Address]] = [
        lambda: Address.parse(f"Ada{char} <ada@example.com>", "to"),
        lambda: Address.create("ada@example.com", f"Ada {char}", "to"),
        lambda: Address.create("ada@example.com").with_display_name(f"{char}Ada"),
    ]
    for make in makers:
        with pytest.raises(InvalidAddressError) as caught:
            make()
        assert f"U+{ord(char):04X}" in str(caught.value)


def test_display_names_keep_bidi_marks_and_collapse_line_separators() -> None:
    """Right-to-left names may need the marks (U+200E/F); NEL and U+2028/9 are blanks."""
    name = "\u05d3\u05e0\u05d9\u200f Cohen"
    address = Address.create("dani@example.com", name, "to")
    (read_back,) = parse(build(Message(to=[address], text="x")))["To"].addresses
    assert read_back.display_name == name
    assert Address.create("a@example.com", "Ada\x85Lovelace\u2028L.").display_name == (
        "Ada Lovelace L."
    )


# -- what is wrong with an address, in words ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("Ada <ada@example.com", "missing the '>'"),
        ("Ada ada@example.com>", "missing the '<'"),
        ("<ada@example.com> Ada", "text after the '>'"),
        ("a@example.com, b@example.com", "more than one address"),
        ("a@example.com b@example.com", "more than one '@'"),
        ("ada lovelace@example.com", "a blank"),
        ("ada;b@example.com", "';'"),
        ("a" * 65 + "@example.com", "over 64 octets"),
        ("ada.@example.com", "invalid local part"),
    ],
)
def test_address_errors_say_what_is_wrong(value: str, words: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        Address.parse(value, "from_email")
    assert caught.value.field == "from_email"
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("a@example.com, b@example.com", ["a@example.com", "b@example.com"]),
        (
            ["a@example.com,b@example.com", "c@example.com"],
            ["a@example.com", "b@example.com", "c@example.com"],
        ),
        (
            '"Lovelace, Ada" <ada@example.com>, bob@example.com',
            ["ada@example.com", "bob@example.com"],
        ),
        ("Ada <ada@example.com>, Bob <bob@example.com>,", ["ada@example.com", "bob@example.com"]),
        # An unquoted comma in a name is not a list (one entry has no "@"): one address.
        ("Lovelace, Ada <ada@example.com>", ["ada@example.com"]),
    ],
)
def test_comma_separated_recipients_are_split(to: str | list[str], expected: list[str]) -> None:
    envelope = build(Message(to=to, text="x"))
    assert list(envelope.recipients) == expected
    assert [a.addr_spec for a in parse(envelope)["To"].addresses] == expected


# -- long subjects and header words ---------------------------------------------------------


@pytest.mark.parametrize("length", [990, 1000, 5000])
def test_a_long_unbroken_subject_is_encoded_not_refused(length: int) -> None:
    subject = "Report-" + "x" * length
    envelope = build(Message(to=["a@example.com"], subject=subject, text="x"))
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    assert_crlf_only(envelope.data)
    assert parse(envelope)["Subject"] == subject


subject_words = st.text(st.sampled_from("ab-/.:"), min_size=1, max_size=40) | st.builds(
    lambda char, length: char * length, st.sampled_from("ab-/.:"), st.integers(70, 1500)
)


@settings(max_examples=100, deadline=None)
@given(words=st.lists(subject_words, min_size=1, max_size=4))
@example(words=[":" * 22, ":" * 23, ":" * 23])  # the email package's folding: a leading blank
@example(words=["x" * 1200])
def test_subjects_of_any_word_length_read_back(words: list[str]) -> None:
    subject = " ".join(words)
    envelope = build(Message(to=["a@example.com"], subject=subject, text="x"))
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    assert parse(envelope)["Subject"] == subject


def test_a_header_word_over_998_octets_is_refused_by_name() -> None:
    url = "<https://example.com/" + "x" * 1000 + ">"
    with pytest.raises(MessageError) as caught:
        build(Message(to=["a@example.com"], text="x", headers={"List-Unsubscribe": url}))
    assert caught.value.field == "header List-Unsubscribe"
    assert "998" in str(caught.value)


# -- wrong Python types: a MessageError naming the field ------------------------------------


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

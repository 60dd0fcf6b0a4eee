"""The MIME tree: bodies, alternatives, inline images, attachments and attached emails."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.errors import MessageError
from mailroom.message import MAX_LINE_OCTETS, Attachment, Envelope, Message
from support.envelopes import PNG, assert_crlf_only, build, longest_line, parse


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


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]) | st.just("\n")))
def test_text_body_round_trips(text: str) -> None:
    envelope = build(Message(to=["a@example.com"], text=text))
    body = parse(envelope).get_content()
    assert isinstance(body, str)
    expected = text if text.endswith("\n") else text + "\n"
    assert body.replace("\r\n", "\n") == expected


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
    # The header lines and the blank line after them end in LF or CRLF: a lone CR there
    # followed by the next line's LF would read as one CRLF and swallow the blank line, making
    # the body's first line a header continuation. Body lines take any mix.
    head_ends = draw(st.lists(st.sampled_from(["\n", "\r\n"]), min_size=3, max_size=3))
    body_ends = draw(
        st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines), max_size=len(lines))
    )
    ends = [*head_ends, *body_ends]
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

"""Differential test: each message of a table goes through Django's own SMTP backend to one
aiosmtpd server and through Mailroom (EmailBackend, outbox, worker) to another; the two
servers must receive the same envelope, the same header values (Date and Message-ID aside,
unless the caller set them) and the same parts (content types, filenames, decoded payloads).

The one difference allowed is listed in the README ("Django", differences): an address given
twice is one ``RCPT TO`` from Mailroom, two from Django.
"""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage as StdMessage
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

from mailroom.delivery.worker import WorkerStats
from support.smtp_server import ServerFactory, SMTPTestServer

Deliver = Callable[[], WorkerStats]

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)
LONG_LINE = "word " * 400  # 2000 characters on one line: over RFC 5322's 998 octets


def _cases(tmp: Path) -> dict[str, Callable[[], Any]]:
    """name → a function making a fresh message (Django's ``message()`` draws new ids)."""
    from django.core import mail  # noqa: PLC0415

    def plain() -> Any:
        return mail.EmailMessage("Hello", "Body", "from@example.com", ["to@example.com"])

    def unicode_names() -> Any:
        return mail.EmailMessage(
            "Grüße aus Köln — ☃",
            "Ünïcödé body ✓",
            "Jürgen Müller <juergen@example.com>",
            ["Zoë Ångström <zoe@example.com>", "李小龙 <li@example.com>"],
        )

    def idn_domain() -> Any:
        return mail.EmailMessage("IDN", "b", "from@example.com", ["user@bücher.example"])

    def cc_bcc_reply_to() -> Any:
        return mail.EmailMessage(
            "Copies",
            "b",
            "from@example.com",
            ["to@example.com"],
            bcc=["hidden@example.com", "Hidden Two <h2@example.com>"],
            cc=["Carbon <cc@example.com>"],
            reply_to=["Replies <reply@example.com>", "other@example.com"],
        )

    def only_bcc() -> Any:
        return mail.EmailMessage("Only bcc", "b", "from@example.com", bcc=["b@example.com"])

    def extra_headers() -> Any:
        return mail.EmailMessage(
            "Headers",
            "b",
            "from@example.com",
            ["to@example.com"],
            headers={
                "X-Campaign": "spring",
                "List-Unsubscribe": "<mailto:unsub@example.com>",
                "X-Unicode": "naïve café",
                "Precedence": "bulk",
            },
        )

    def header_overrides() -> Any:
        return mail.EmailMessage(
            "Overrides",
            "b",
            "from@example.com",
            ["to@example.com"],
            headers={"From": "Shown <shown@example.com>", "To": "Shown To <x@example.com>"},
        )

    def custom_ids() -> Any:
        return mail.EmailMessage(
            "Ids",
            "b",
            "from@example.com",
            ["to@example.com"],
            headers={
                "Message-ID": "<custom.1@example.com>",
                "Date": "Tue, 01 Dec 2026 10:00:00 +0000",
            },
        )

    def html_only() -> Any:
        message = mail.EmailMessage("Html", "<p>Hi <b>there</b></p>", "f@example.com", ["t@e.com"])
        message.content_subtype = "html"
        return message

    def alternatives() -> Any:
        message = mail.EmailMultiAlternatives("Alt", "text", "f@example.com", ["t@example.com"])
        message.attach_alternative("<p>html</p>", "text/html")
        return message

    def two_alternatives() -> Any:
        message = mail.EmailMultiAlternatives("Alt2", "text", "f@example.com", ["t@example.com"])
        message.attach_alternative("<p>html</p>", "text/html")
        message.attach_alternative("# markdown", "text/markdown")
        return message

    def attachments_of_types() -> Any:
        message = mail.EmailMessage("Files", "see files", "f@example.com", ["t@example.com"])
        message.attach("notes.txt", "plain text file\nline 2", "text/plain")
        message.attach("data.csv", "a,b\n1,2\n", "text/csv")
        message.attach("blob.bin", bytes(range(256)), "application/octet-stream")
        message.attach("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3", "application/pdf")
        message.attach("page.html", "<h1>x</h1>", "text/html")
        return message

    def attachment_guessed_type() -> Any:
        message = mail.EmailMessage("Guess", "b", "f@example.com", ["t@example.com"])
        message.attach("report.json", '{"a": 1}')
        return message

    def unicode_filename() -> Any:
        message = mail.EmailMessage("Filename", "b", "f@example.com", ["t@example.com"])
        message.attach("Übersicht € 2026.txt", "inhalt", "text/plain")
        return message

    def attach_file() -> Any:
        path = tmp / "invoice.pdf"
        path.write_bytes(b"%PDF-1.7 file on disk")
        message = mail.EmailMessage("File", "b", "f@example.com", ["t@example.com"])
        message.attach_file(str(path))
        return message

    def mime_base_parts() -> Any:
        message = mail.EmailMessage("Mime", "b", "f@example.com", ["t@example.com"])
        part = MIMEApplication(b"\x00\x01zip", "zip")
        part.add_header("Content-Disposition", "attachment", filename="a.zip")
        message.attach(part)
        message.attach(MIMEText("a text part", "plain", "utf-8"))
        return message

    def inline_image() -> Any:
        message = mail.EmailMultiAlternatives("Inline", "t", "f@example.com", ["t@example.com"])
        message.attach_alternative('<img src="cid:logo@x">', "text/html")
        image = MIMEImage(PNG, "png")
        image.add_header("Content-ID", "<logo@x>")
        image.add_header("Content-Disposition", "inline", filename="logo.png")
        message.attach(image)
        return message

    def alternatives_and_attachment() -> Any:
        message = mail.EmailMultiAlternatives("Both", "t", "f@example.com", ["t@example.com"])
        message.attach_alternative("<p>h</p>", "text/html")
        message.attach("a.txt", "attached", "text/plain")
        return message

    def long_lines() -> Any:
        return mail.EmailMessage("Long", LONG_LINE, "f@example.com", ["t@example.com"])

    def long_unicode_subject() -> Any:
        return mail.EmailMessage(
            "Sehr langer Betreff " + "mit Ümläuten " * 12, "b", "f@example.com", ["t@e.com"]
        )

    def latin1_encoding() -> Any:
        message = mail.EmailMessage("Latin", "café crème", "f@example.com", ["t@example.com"])
        message.encoding = "iso-8859-1"
        return message

    def many_recipients() -> Any:
        return mail.EmailMessage(
            "Many", "b", "f@example.com", [f"user{n}@example.com" for n in range(30)]
        )

    def quoted_display_names() -> Any:
        return mail.EmailMessage(
            "Quotes",
            "b",
            '"Smith, John" <john@example.com>',
            ['"O\'Brien, Pat" <pat@example.com>', "Dr. Who <who@example.com>"],
        )

    def crlf_body() -> Any:
        return mail.EmailMessage("Lines", "a\r\nb\nc\r\n.\r\n..dot", "f@e.com", ["t@e.com"])

    def empty_body() -> Any:
        return mail.EmailMessage("Empty", "", "f@example.com", ["t@example.com"])

    def duplicate_recipient() -> Any:
        return mail.EmailMessage(
            "Dup", "b", "f@example.com", ["d@example.com"], cc=["d@example.com"]
        )

    return {
        name: function
        for name, function in locals().items()
        if callable(function) and not name.startswith("_")
    }


CASE_NAMES = [
    "plain", "unicode_names", "idn_domain", "cc_bcc_reply_to", "only_bcc", "extra_headers",
    "header_overrides", "custom_ids", "html_only", "alternatives", "two_alternatives",
    "attachments_of_types", "attachment_guessed_type", "unicode_filename", "attach_file",
    "mime_base_parts", "inline_image", "alternatives_and_attachment", "long_lines",
    "long_unicode_subject", "latin1_encoding", "many_recipients", "quoted_display_names",
    "crlf_body", "empty_body", "duplicate_recipient",
]  # fmt: skip


Part = tuple[str, str | None, str | None, str | None, Any]


def _parts(message: StdMessage) -> list[Part]:
    """Every part: content type, filename, Content-ID, disposition, decoded payload."""
    out: list[Part] = []
    for part in message.walk():
        if part.is_multipart():
            out.append((part.get_content_type(), None, None, None, None))
            continue
        out.append(
            (
                part.get_content_type(),
                part.get_filename(),
                part["Content-ID"],
                part.get_content_disposition(),
                part.get_content(),
            )
        )
    return out


def _headers(message: StdMessage, ignore: set[str]) -> list[tuple[str, str]]:
    """Decoded header values in order; a multipart's boundary (random) left out."""
    out = []
    for name, value in message.items():
        if name.lower() in ignore:
            continue
        if name.lower() == "content-type":
            params = {k: v for k, v in value.params.items() if k != "boundary"}
            out.append((name, f"{value.content_type} {sorted(params.items())}"))
            continue
        out.append((name, str(value)))
    return out


@pytest.fixture
def two_servers(smtp_server_factory: ServerFactory) -> tuple[SMTPTestServer, SMTPTestServer]:
    return smtp_server_factory(), smtp_server_factory()


def test_mailroom_sends_what_django_sends(
    django_project: list[str],
    two_servers: tuple[SMTPTestServer, SMTPTestServer],
    deliver: Deliver,
    tmp_path: Path,
) -> None:
    from django.core.mail import get_connection  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    django_server, mailroom_server = two_servers
    cases = _cases(tmp_path)
    assert sorted(cases) == sorted(CASE_NAMES)
    assert len(cases) >= 20

    def tagged(name: str) -> Any:
        message = cases[name]()
        message.extra_headers["X-Case"] = name  # to pair what the two servers received
        return message

    direct = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=django_server.port
    )
    assert direct.send_messages([tagged(name) for name in CASE_NAMES]) == len(CASE_NAMES)
    with override_settings(EMAIL_PORT=mailroom_server.port, MAILROOM={"DATABASE": "default"}):
        with get_connection() as connection:
            assert connection.send_messages([tagged(n) for n in CASE_NAMES]) == len(CASE_NAMES)
        assert deliver().sent == len(CASE_NAMES)

    def by_case(server: SMTPTestServer) -> dict[str, tuple[Any, StdMessage]]:
        out = {}
        for received in server.handler.received:
            message = message_from_bytes(received.data, policy=policy.default)
            assert isinstance(message, StdMessage)
            out[str(message["X-Case"])] = (received, message)
        return out

    from_django, from_mailroom = by_case(django_server), by_case(mailroom_server)
    assert sorted(from_django) == sorted(from_mailroom) == sorted(CASE_NAMES)
    for name in CASE_NAMES:
        (django_envelope, django_message) = from_django[name]
        (mailroom_envelope, mailroom_message) = from_mailroom[name]
        assert mailroom_envelope.mail_from == django_envelope.mail_from, name
        # Mailroom sends one RCPT TO per address; Django one per mention (the README).
        assert mailroom_envelope.rcpt_tos == list(dict.fromkeys(django_envelope.rcpt_tos)), name
        ignore = {"date", "message-id"} if name != "custom_ids" else set()
        assert _headers(mailroom_message, ignore) == _headers(django_message, ignore), name
        assert _parts(mailroom_message) == _parts(django_message), name
    assert from_django["duplicate_recipient"][0].rcpt_tos == ["d@example.com", "d@example.com"]
    assert from_mailroom["custom_ids"][1]["Message-ID"] == "<custom.1@example.com>"

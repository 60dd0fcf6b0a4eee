"""Checks every generated message must pass, shared by all notification tests.

``assert_well_formed`` parses the bytes back with the standard library and insists on the
headers RFC 5322 §3.6 requires (Date, From) or recommends (Message-ID), MIME-Version
(RFC 2045 §4), a text/plain part, and no line over 998 octets (RFC 5322 §2.1.1).
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

from sqlalchemy import Engine, select

from mailroom.outbox.schema import messages

MAX_LINE_OCTETS = 998


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")  # the wire's line ends, as Python strings have them


def html_part(message: EmailMessage) -> str | None:
    part = message.get_body(preferencelist=("html",))
    if part is None:
        return None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")  # the wire's line ends, as Python strings have them


def assert_well_formed(data: bytes) -> EmailMessage:
    """Parse ``data`` and check what every message we generate must have."""
    for number, line in enumerate(data.split(b"\r\n"), 1):
        assert len(line) <= MAX_LINE_OCTETS, f"line {number} is {len(line)} octets"
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF in the message"
    message = parse(data)
    for name in ("Date", "Message-ID", "From", "MIME-Version"):
        assert message[name], f"no {name} header"
        assert len(message.get_all(name) or []) == 1, f"{name} appears more than once"
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime is not None
    assert message["Message-ID"].startswith("<")
    assert message["Message-ID"].endswith(">")
    assert message.defects == [], message.defects
    text_part(message)
    return message


def stored_messages(engine: Engine) -> list[bytes]:
    """The bytes of every message in the outbox, oldest first."""
    with engine.connect() as connection:
        return list(connection.execute(select(messages.c.data).order_by(messages.c.id)).scalars())

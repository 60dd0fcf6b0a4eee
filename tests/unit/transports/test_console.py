"""ConsoleTransport: prints the envelope and the message to a stream."""

from __future__ import annotations

import io

import pytest

from mailroom.message import Message, build_envelope
from mailroom.transports import ConsoleTransport, Transport
from mailroom.transports.base import SendResult


async def test_console_writes_envelope_and_message_to_the_stream() -> None:
    envelope = build_envelope(
        Message(
            to=["ada@example.com", "Zoë <zoe@example.com>"],
            bcc=["hidden@example.com"],
            subject="Grüße aus Wien",
            text="Hello there",
        ),
        default_from="Shop <shop@example.com>",
    )
    stream = io.StringIO()
    transport = ConsoleTransport(stream)
    result = await transport.send(envelope)
    output = stream.getvalue()
    assert "MAIL FROM: shop@example.com\n" in output
    assert "RCPT TO: ada@example.com, zoe@example.com, hidden@example.com\n" in output
    assert f"Message-ID: {envelope.message_id}" in output
    assert "Hello there" in output
    assert "\r" not in output  # CRLF turned into the stream's own line ends
    assert envelope.data.decode().replace("\r\n", "\n") in output
    assert output.startswith("-" * 72 + "\n")
    assert output.endswith("-" * 72 + "\n")
    assert result == SendResult(
        envelope.message_id, envelope.recipients, "console", location="standard output"
    )


async def test_console_separates_messages() -> None:
    stream = io.StringIO()
    transport = ConsoleTransport(stream)
    for n in range(3):
        envelope = build_envelope(
            Message(to=[f"u{n}@example.com"], subject=f"number {n}", text="x"),
            default_from="shop@example.com",
        )
        await transport.send(envelope)
    output = stream.getvalue()
    assert output.count("MAIL FROM: shop@example.com") == 3
    assert output.count("-" * 72) == 6
    for n in range(3):
        assert f"RCPT TO: u{n}@example.com\n" in output
        assert f"Subject: number {n}" in output


async def test_console_shows_utf8_addresses_readably() -> None:
    envelope = build_envelope(
        Message(to=["δοκιμή@example.com"], text="x"), default_from="shop@example.com"
    )
    stream = io.StringIO()
    await ConsoleTransport(stream).send(envelope)
    assert "RCPT TO: δοκιμή@example.com" in stream.getvalue()
    assert "To: δοκιμή@example.com" in stream.getvalue()


async def test_console_defaults_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    envelope = build_envelope(Message(to=["a@example.com"], text="x"), default_from="s@example.com")
    async with ConsoleTransport() as transport:
        assert isinstance(transport, Transport)
        await transport.send(envelope)
    assert "RCPT TO: a@example.com" in capsys.readouterr().out


def test_console_describes_itself() -> None:
    assert ConsoleTransport().describe() == "console"

"""NullTransport accepts and discards; plus choosing a transport from settings."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailroom.config import load_settings
from mailroom.errors import TransportSetupError
from mailroom.message import Message, build_envelope
from mailroom.transports import (
    ConsoleTransport,
    FileTransport,
    MemoryTransport,
    NullTransport,
    SMTPTransport,
    Transport,
    transport_from_settings,
)


async def test_null_accepts_every_recipient() -> None:
    envelope = build_envelope(
        Message(to=["a@example.com"], bcc=["b@example.com"], text="x"),
        default_from="shop@example.com",
    )
    async with NullTransport() as transport:
        result = await transport.send(envelope)
    assert result.accepted == ("a@example.com", "b@example.com")
    assert result.message_id == envelope.message_id
    assert result.transport == "null"
    assert result.location == "nowhere"
    assert result.refused == {}
    assert transport.describe() == "null"


@pytest.fixture
def clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """load_settings reads ./mailroom.toml when it exists; work where there is none."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("console", ConsoleTransport),
        ("memory", MemoryTransport),
        ("null", NullTransport),
        ("file", FileTransport),
        ("smtp", SMTPTransport),
        ("django.core.mail.backends.locmem.EmailBackend", MemoryTransport),
        ("django.core.mail.backends.dummy.EmailBackend", NullTransport),
        ("django.core.mail.backends.console.EmailBackend", ConsoleTransport),
        ("django.core.mail.backends.filebased.EmailBackend", FileTransport),
    ],
)
def test_transport_from_settings_picks_the_backend(
    clean_cwd: Path, backend: str, kind: type[Transport]
) -> None:
    settings = load_settings(environ={"EMAIL_BACKEND": backend})
    transport = transport_from_settings(settings)
    assert type(transport) is kind


def test_file_backend_uses_email_file_path(clean_cwd: Path) -> None:
    folder = clean_cwd / "sent-mail"
    settings = load_settings(environ={"EMAIL_BACKEND": "file", "EMAIL_FILE_PATH": str(folder)})
    transport = transport_from_settings(settings)
    assert isinstance(transport, FileTransport)
    assert transport.directory == folder


def test_smtp_backend_uses_host_and_port(clean_cwd: Path) -> None:
    settings = load_settings(
        environ={"EMAIL_BACKEND": "smtp", "EMAIL_HOST": "relay.example.com", "EMAIL_PORT": "2525"}
    )
    transport = transport_from_settings(settings)
    assert isinstance(transport, SMTPTransport)
    assert (transport.host, transport.port) == ("relay.example.com", 2525)


def test_default_transport_is_capture(clean_cwd: Path) -> None:
    # It stores into the outbox database: only a caller holding one can build it.
    with pytest.raises(TransportSetupError, match="MAILROOM_TRANSPORT is capture"):
        transport_from_settings(load_settings(environ={}))


async def test_console_from_settings_writes_to_the_given_stream(clean_cwd: Path) -> None:
    stream = io.StringIO()
    settings = load_settings(environ={"EMAIL_BACKEND": "console"})
    transport = transport_from_settings(settings, console=stream)
    envelope = build_envelope(Message(to=["a@example.com"], text="x"), default_from="s@example.com")
    await transport.send(envelope)
    assert "RCPT TO: a@example.com" in stream.getvalue()

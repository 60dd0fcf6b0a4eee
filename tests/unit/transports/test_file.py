"""FileTransport: one complete ``.eml`` file per message, written atomically."""

from __future__ import annotations

import asyncio
import email
import email.policy
from pathlib import Path

import pytest

from mailroom.errors import TransportSetupError
from mailroom.message import Attachment, Envelope, Message, build_envelope
from mailroom.transports import FileTransport


def make_envelope(n: int = 0) -> Envelope:
    return build_envelope(
        Message(
            to=[f"user{n}@example.com"],
            subject=f"Message {n}",
            text=f"Body {n}",
            html=f"<p>Body {n}</p>",
            attachments=[Attachment.from_bytes("data.bin", bytes(range(256)))],
        ),
        default_from="shop@example.com",
    )


async def test_file_writes_one_eml_with_the_exact_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "nested"
    transport = FileTransport(folder)
    envelope = make_envelope()
    result = await transport.send(envelope)
    files = list(folder.iterdir())
    assert len(files) == 1
    (written,) = files
    assert written.suffix == ".eml"
    assert written.read_bytes() == envelope.data
    assert result.location == str(written)
    assert Path(result.location).is_absolute() == folder.is_absolute()
    assert result.message_id == envelope.message_id
    assert result.accepted == envelope.recipients
    assert result.transport == "file"
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == envelope.message_id


async def test_file_creates_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "c"
    assert not folder.exists()
    await FileTransport(str(folder)).send(make_envelope())
    assert folder.is_dir()


async def test_file_many_quick_sends_get_unique_names_and_no_temp_files(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    envelopes = [make_envelope(n) for n in range(60)]
    sequential = [await transport.send(e) for e in envelopes[:30]]
    concurrent = await asyncio.gather(*(transport.send(e) for e in envelopes[30:]))
    results = [*sequential, *concurrent]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 60
    assert all(name.endswith(".eml") and not name.startswith(".") for name in names)
    assert len({r.location for r in results}) == 60
    for envelope, result in zip(envelopes, results, strict=True):
        assert Path(result.location).read_bytes() == envelope.data


async def test_file_names_sort_by_time(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    first = await transport.send(make_envelope(1))
    await asyncio.sleep(1.1)  # the name starts with a per-second stamp
    second = await transport.send(make_envelope(2))
    assert Path(first.location).name < Path(second.location).name


async def test_file_refuses_a_path_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    transport = FileTransport(blocker / "mail")
    with pytest.raises(TransportSetupError) as caught:
        await transport.send(make_envelope())
    assert "EMAIL_FILE_PATH" in str(caught.value)
    assert list(tmp_path.iterdir()) == [blocker]


async def test_file_works_with_async_with(tmp_path: Path) -> None:
    async with FileTransport(tmp_path) as transport:
        await transport.send(make_envelope())
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_file_describes_its_folder(tmp_path: Path) -> None:
    assert FileTransport(tmp_path).describe() == f"file ({tmp_path.resolve()})"

"""Attachments made from a path or from bytes guess their type."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.message import Attachment, Message
from support.envelopes import build, parse


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

"""The capture transport: what it answers, and a database fault as a transient failure."""

from __future__ import annotations

import pytest

from mailroom.errors import DatabaseBusyError, TransientError
from mailroom.message import Envelope
from mailroom.transports import CaptureTransport

ENVELOPE = Envelope("s@example.com", ("a@example.com", "b@example.com"), b"x\r\n", "<1@example>")


async def test_answers_with_the_captured_id_for_every_recipient() -> None:
    async def sink(envelope: Envelope) -> int:
        return 41 if envelope is ENVELOPE else -1

    result = await CaptureTransport(sink).send(ENVELOPE)
    assert result.accepted == ("a@example.com", "b@example.com")
    assert result.message_id == "<1@example>"
    assert result.location == "captured #41"
    assert result.reply is None
    assert not result.refused


async def test_a_database_fault_is_transient_so_the_message_is_tried_again() -> None:
    async def sink(envelope: Envelope) -> int:
        raise DatabaseBusyError("DATABASE_URL: database is locked")

    with pytest.raises(TransientError, match=r"^capture: could not store the message: ") as info:
        await CaptureTransport(sink).send(ENVELOPE)
    assert isinstance(info.value.__cause__, DatabaseBusyError)


async def test_a_bug_in_the_sink_is_not_disguised() -> None:
    async def sink(envelope: Envelope) -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await CaptureTransport(sink).send(ENVELOPE)

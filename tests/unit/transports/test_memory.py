"""MemoryTransport: keeps every envelope in ``outbox``."""

from __future__ import annotations

from mailroom.message import Envelope, Message, build_envelope
from mailroom.transports import MemoryTransport, SendResult


def make_envelope(n: int) -> Envelope:
    return build_envelope(
        Message(to=[f"u{n}@example.com"], cc=["cc@example.com"], subject=f"#{n}", text="x"),
        default_from="shop@example.com",
    )


async def test_memory_keeps_envelopes_in_order() -> None:
    transport = MemoryTransport()
    assert transport.outbox == []
    envelopes = [make_envelope(n) for n in range(5)]
    results = [await transport.send(e) for e in envelopes]
    assert transport.outbox == envelopes
    assert all(kept is sent for kept, sent in zip(transport.outbox, envelopes, strict=True))
    assert results[0] == SendResult(
        envelopes[0].message_id,
        ("u0@example.com", "cc@example.com"),
        "memory",
        location="memory outbox",
    )
    assert results[0].refused == {}


async def test_memory_outboxes_are_separate() -> None:
    first, second = MemoryTransport(), MemoryTransport()
    await first.send(make_envelope(1))
    assert len(first.outbox) == 1
    assert second.outbox == []


async def test_memory_works_with_async_with() -> None:
    async with MemoryTransport() as transport:
        await transport.send(make_envelope(1))
    assert len(transport.outbox) == 1
    assert transport.describe() == "memory"

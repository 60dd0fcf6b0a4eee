"""EMAIL_TIMEOUT holds in every state of the dialogue, on asyncio's loop and on uvloop.

Each test sends through :class:`SMTPTransport` to a :class:`StallingRelay` that goes quiet at
one point — before its greeting, after a command, after DATA's 354 while a message of several
MB is being written (the relay stops reading, the socket buffers fill, writing is paused) —
and checks that the send fails with :class:`DeliveryTimeoutError` at that stage, within about
the timeout, and leaves no connection open.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from mailroom.delivery import loop as event_loops
from mailroom.errors import DeliveryTimeoutError, SMTPStage
from mailroom.message import Envelope
from mailroom.transports.smtp import SMTPTransport
from support.stalling_relay import StallAt, StallingRelay
from support.tls_files import TLSFiles

LOOPS = pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
TIMEOUT = 0.5
SLACK = 1.5  # seconds beyond the timeout: the watchdog looks every timeout/4, plus CI noise


def on(loop_name: str, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    event_loops.run(scenario(), loop_name)


def envelope(size: int = 1000) -> Envelope:
    line = b"x" * 76 + b"\r\n"
    body = line * (size // len(line) + 1)
    return Envelope(
        sender="shop@example.com",
        recipients=("ada@example.com",),
        data=b"Subject: big\r\nMessage-ID: <big@example.com>\r\n\r\n" + body,
        message_id="<big@example.com>",
    )


async def timed_failure(transport: SMTPTransport, message: Envelope) -> tuple[Any, float]:
    started = time.monotonic()
    with pytest.raises(DeliveryTimeoutError) as caught:
        # The outer bound only keeps a regression from hanging the suite.
        await asyncio.wait_for(transport.send(message), TIMEOUT + 30)
    return caught.value, time.monotonic() - started


@LOOPS
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_a_relay_that_stops_reading_after_354_fails_the_send_within_the_timeout(
    loop_name: str, pipelining: bool
) -> None:
    """The hang of issue 9: writing paused for ever, the timeout never checked."""

    async def scenario() -> None:
        async with StallingRelay(StallAt.CONTENT, pipelining=pipelining) as relay:
            transport = SMTPTransport(host="127.0.0.1", port=relay.port, timeout=TIMEOUT)
            error, waited = await timed_failure(transport, envelope(24 << 20))
            assert relay.stalled.is_set()
            assert waited < TIMEOUT + SLACK
            assert error.stage is SMTPStage.DATA
            assert "stopped reading" in str(error)
            # The final dot never left: the relay cannot have accepted the message.
            assert not error.possibly_delivered
            assert not transport.is_connected
            await transport.close()

    on(loop_name, scenario)


@LOOPS
def test_a_relay_that_stops_reading_over_tls_fails_the_send_within_the_timeout(
    loop_name: str, tls: TLSFiles
) -> None:
    """Under TLS the content is encrypted as it goes; written whole, it would all move into
    the socket transport's buffer at once and the stall would look like a silent reply."""

    async def scenario() -> None:
        relay = StallingRelay(StallAt.CONTENT, implicit_tls=tls.server_context)
        async with relay:
            transport = SMTPTransport(
                host="127.0.0.1", port=relay.port, timeout=TIMEOUT, use_ssl=True, cafile=tls.ca_path
            )
            error, waited = await timed_failure(transport, envelope(24 << 20))
            assert waited < TIMEOUT + SLACK
            assert error.stage is SMTPStage.DATA
            assert "stopped reading" in str(error)
            assert not error.possibly_delivered
            await transport.close()

    on(loop_name, scenario)


@LOOPS
def test_silence_after_the_final_dot_is_a_timeout_that_may_have_delivered(
    loop_name: str,
) -> None:
    async def scenario() -> None:
        async with StallingRelay(StallAt.DOT) as relay:
            transport = SMTPTransport(host="127.0.0.1", port=relay.port, timeout=TIMEOUT)
            error, waited = await timed_failure(transport, envelope(2 << 20))
            assert len(relay.messages) == 1  # it read everything, then said nothing
            assert waited < TIMEOUT + SLACK
            assert error.stage is SMTPStage.DATA
            assert error.possibly_delivered
            await transport.close()

    on(loop_name, scenario)


@LOOPS
@pytest.mark.parametrize(
    ("stall_at", "stage", "settings"),
    [
        (StallAt.GREETING, SMTPStage.CONNECT, {}),
        (StallAt.EHLO, SMTPStage.EHLO, {}),
        (StallAt.STARTTLS, SMTPStage.STARTTLS, {"use_tls": True}),
        (StallAt.AUTH, SMTPStage.AUTH, {"username": "u", "password": "p"}),
        (StallAt.MAIL, SMTPStage.MAIL, {}),
        (StallAt.RCPT, SMTPStage.RCPT, {}),
        (StallAt.DATA, SMTPStage.DATA, {}),
    ],
    ids=lambda value: str(value) if isinstance(value, StallAt) else "",
)
def test_silence_at_each_point_of_the_dialogue_is_a_timeout_at_that_stage(
    loop_name: str, stall_at: StallAt, stage: SMTPStage, settings: dict[str, Any]
) -> None:
    async def scenario() -> None:
        async with StallingRelay(stall_at, pipelining=False) as relay:
            transport = SMTPTransport(
                host="127.0.0.1", port=relay.port, timeout=TIMEOUT, **settings
            )
            error, waited = await timed_failure(transport, envelope())
            assert relay.stalled.is_set()
            assert waited < TIMEOUT + SLACK
            assert error.stage is stage
            assert f"did not answer within {TIMEOUT:g} s" in str(error)
            assert not transport.is_connected
            await transport.close()

    on(loop_name, scenario)


async def test_a_machine_name_lookup_that_hangs_is_bounded_by_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiosmtplib asks socket.getfqdn() before every connection, with no time limit; a
    machine with a broken resolver hung there. Now it is asked once, within the timeout,
    and without an answer we greet with our address."""

    def hanging_getfqdn(name: str = "") -> str:
        time.sleep(5)
        return "late.example.com"

    monkeypatch.setattr(socket, "getfqdn", hanging_getfqdn)
    async with StallingRelay(None) as relay:
        transport = SMTPTransport(host="127.0.0.1", port=relay.port, timeout=TIMEOUT)
        started = time.monotonic()
        result = await asyncio.wait_for(transport.send(envelope()), 10)
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert result.accepted == ("ada@example.com",)
        assert relay.ehlo_names == ["[127.0.0.1]"]
        await transport.close()

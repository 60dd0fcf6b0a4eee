"""Session: pipelined SMTP replies over a real TCP connection, on asyncio's loop and on uvloop.

Every test talks over loopback to :class:`Relay`, a few lines of ``asyncio.start_server``
that answer each command line from a script: at once, late, one byte at a time, never, with
garbage, or by hanging up. The relay's default answer is ``250 <the command>``, so a reply
shows which command it answers and a pairing that shifted by one cannot pass unnoticed.

Most tests run on both event loops (``loop_name``): uvloop's transports are not asyncio's
(abort, EOF and ``set_protocol`` are separate implementations), and the worker uses uvloop
wherever it is installed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import aiosmtplib
import pytest

from mailroom.delivery import loop as event_loops
from mailroom.transports.smtp_session import (
    MalformedReplyError,
    RawReply,
    Session,
    SessionClosedError,
    WriteStalledError,
    dot_stuffed,
)
from support.local_server import LocalServer
from support.smtp_server import ScriptedHandler, ServerFactory

LOOPS = pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])

Answer = Callable[[bytes], bytes | None]
Converse = Callable[["Relay", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def echo(line: bytes) -> bytes | None:
    """``250 <the command>``: the reply names what it answers."""
    return b"250 " + line.strip() + b"\r\n"


def silent(_line: bytes) -> bytes | None:
    return None


class Relay(LocalServer):
    """A scripted SMTP-ish server on 127.0.0.1, port 0.

    For each command line it reads, it waits ``delays[command]`` seconds, then writes
    ``answer(line)`` (nothing if None), one byte at a time ``trickle`` seconds apart if set,
    and hangs up after the line ``hang_up_on``. ``converse`` replaces all of that.
    """

    def __init__(
        self,
        answer: Answer = echo,
        *,
        delays: Mapping[bytes, float] | None = None,
        trickle: float | None = None,
        hang_up_on: bytes | None = None,
        converse: Converse | None = None,
    ) -> None:
        super().__init__()
        self.answer = answer
        self.delays = dict(delays or {})
        self.trickle = trickle
        self.hang_up_on = hang_up_on
        self.converse = converse or Relay.answer_lines
        self.lines: list[bytes] = []
        self.hung_up = asyncio.Event()
        """The client ended the connection (EOF or reset)."""

    async def __aenter__(self) -> Relay:
        await self.listen(host="127.0.0.1", port=0)
        return self

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.converse(self, reader, writer)
        except ConnectionError:
            self.hung_up.set()

    async def answer_lines(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while line := await reader.readline():
            self.lines.append(line)
            await asyncio.sleep(self.delays.get(line.strip(), 0.0))
            reply = self.answer(line)
            if reply and self.trickle is not None:
                for octet in reply:
                    writer.write(bytes([octet]))
                    await writer.drain()
                    await asyncio.sleep(self.trickle)
            elif reply:
                writer.write(reply)
                await writer.drain()
            if line == self.hang_up_on:
                return
        self.hung_up.set()


class RecordingSession(Session):
    """A Session that notes what the socket layer did: the chunks that arrived, and how
    often writing was paused because the socket's buffer was full."""

    def __init__(
        self, transport: asyncio.Transport, extensions: Mapping[str, str], timeout: float
    ) -> None:
        self.chunks: list[bytes] = []
        self.pauses = 0
        super().__init__(transport, extensions, timeout)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(bytes(data))
        super().data_received(data)

    def pause_writing(self) -> None:
        self.pauses += 1
        super().pause_writing()


@asynccontextmanager
async def session_with(
    relay: Relay,
    timeout: float = 5.0,
    extensions: Mapping[str, str] | None = None,
) -> AsyncIterator[RecordingSession]:
    """A Session on a fresh connection to ``relay``; dropped at the end."""
    running = asyncio.get_running_loop()
    transport, _ = await running.create_connection(asyncio.Protocol, "127.0.0.1", relay.port)
    session = RecordingSession(
        transport, {"pipelining": ""} if extensions is None else extensions, timeout
    )
    try:
        yield session
    finally:
        session.abort()
        await asyncio.sleep(0)  # let connection_lost run before the loop goes


def on(loop_name: str, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``scenario`` on a fresh event loop of the kind named, as the worker does."""

    async def checked() -> None:
        is_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        assert is_uvloop == (loop_name == "uvloop")
        await scenario()

    event_loops.run(checked(), loop_name)


async def hung_up(relay: Relay) -> None:
    await asyncio.wait_for(relay.hung_up.wait(), 2.0)


async def assert_over(
    session: Session,
    relay: Relay | None = None,
    pending: asyncio.Future[list[RawReply]] | None = None,
    error: type[BaseException] = SessionClosedError,
    command: bytes = b"RSET\r\n",
) -> None:
    """The session is over: ``pending`` fails with ``error``, the connection is gone (the
    relay saw it go, when given) and nothing more can be written."""
    if pending is not None:
        with pytest.raises(error):
            await pending
    if relay is not None:
        await hung_up(relay)
    assert not session.is_open
    with pytest.raises(SessionClosedError):
        session.write(command, 1)


# -- dot_stuffed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "written"),
    [
        (b"hello", b"hello\r\n.\r\n"),
        (b"hello\r\n", b"hello\r\n.\r\n"),
        (b".first line\r\nsecond\r\n", b"..first line\r\nsecond\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n..b\r\n.c", b"a\r\n...b\r\n..c\r\n.\r\n"),
        (b"a.b\r\nc. d .\r\n", b"a.b\r\nc. d .\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
    ],
)
def test_dot_stuffed_doubles_leading_dots_and_ends_the_content(
    content: bytes, written: bytes
) -> None:
    assert dot_stuffed(content) == written


@LOOPS
def test_a_real_relay_takes_pipelined_commands_and_unstuffs_the_content(
    loop_name: str, smtp_server_factory: ServerFactory
) -> None:
    """As in production: aiosmtplib greets and says EHLO, then hands its socket over."""
    handler = ScriptedHandler(pipelining=True)
    server = smtp_server_factory(handler=handler)
    content = b".starts with a dot\r\nmiddle\r\n.\r\n..two dots\r\nno final line end"

    async def scenario() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port)
        await smtp.connect()
        await smtp.ehlo()
        # (uvloop's transports are not asyncio.Transport subclasses: a cast, as in smtp.py)
        session = Session(cast(asyncio.Transport, smtp.transport), smtp.esmtp_extensions, 5.0)
        assert session.pipelining
        assert session.supports("PIPELINING")
        assert session.supports("size")
        assert not session.supports("starttls")
        commands = (
            b"MAIL FROM:<shop@example.com>\r\n"
            b"RCPT TO:<ada@example.com>\r\n"
            b"RCPT TO:<bob@example.com>\r\n"
            b"DATA\r\n"
        )
        replies = await session.write(commands, 4)
        assert [reply.code for reply in replies] == [250, 250, 250, 354]
        assert await session.write(dot_stuffed(content), 1) == [RawReply(250, "2.0.0 OK queued")]
        await session.quit(2.0)
        assert not session.is_open

    on(loop_name, scenario)

    # One round trip: RCPT and DATA were already there when the relay read MAIL.
    assert handler.behind_mail == [
        b"RCPT TO:<ada@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
    ]
    [received] = handler.received
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["ada@example.com", "bob@example.com"]
    assert received.data == content + b"\r\n"


# -- replies and their commands -------------------------------------------------------------


@LOOPS
def test_pipelined_replies_pair_with_their_commands_in_order(loop_name: str) -> None:
    async def scenario() -> None:
        async with Relay() as relay, session_with(relay) as session:
            received: list[RawReply] = []
            first = session.write(b"MAIL A\r\nRCPT B\r\nDATA\r\n", 3, received=received)
            second = session.write(b"NOOP 1\r\n", 1)
            third = session.write(b"NOOP 2\r\n", 1)
            assert await first == [
                RawReply(250, "MAIL A"),
                RawReply(250, "RCPT B"),
                RawReply(250, "DATA"),
            ]
            assert received == await first
            assert await second == [RawReply(250, "NOOP 1")]
            assert await third == [RawReply(250, "NOOP 2")]
            assert await session.command(b"RSET\r\n") == RawReply(250, "RSET")
            assert session.is_open
            assert relay.lines == [
                b"MAIL A\r\n",
                b"RCPT B\r\n",
                b"DATA\r\n",
                b"NOOP 1\r\n",
                b"NOOP 2\r\n",
                b"RSET\r\n",
            ]

    on(loop_name, scenario)


def multiline(line: bytes) -> bytes | None:
    return {
        b"EHLO": b"250-relay.example.com\r\n250-  PIPELINING  \r\n250-SIZE 1000\r\n250 HELP\r\n",
        b"NOOP": b"250\r\n",
        b"LF": b"251-first\n251 second\n",
        b"LATIN": b"550 caf\xe9\r\n",
    }.get(line.strip())


@LOOPS
def test_a_multiline_reply_is_one_reply(loop_name: str) -> None:
    async def scenario() -> None:
        async with Relay(multiline) as relay, session_with(relay) as session:
            pending = session.write(b"EHLO\r\nNOOP\r\nLF\r\nLATIN\r\n", 4)
            assert await pending == [
                RawReply(250, "relay.example.com\nPIPELINING\nSIZE 1000\nHELP"),
                RawReply(250, ""),
                RawReply(251, "first\nsecond"),
                RawReply(550, "caf\ufffd"),
            ]

    on(loop_name, scenario)


@LOOPS
def test_replies_split_across_tcp_segments_are_put_together(loop_name: str) -> None:
    async def scenario() -> None:
        answers = {b"EHLO": b"250-first\r\n250 second\r\n", b"DATA": b"354 go ahead\r\n"}
        relay = Relay(lambda line: answers.get(line.strip(), echo(line)), trickle=0.002)
        async with relay, session_with(relay) as session:
            pending = session.write(b"EHLO\r\nDATA\r\nNOOP\r\n", 3)
            assert await pending == [
                RawReply(250, "first\nsecond"),
                RawReply(354, "go ahead"),
                RawReply(250, "NOOP"),
            ]
            assert await session.command(b"RSET\r\n") == RawReply(250, "RSET")
            # They really came in pieces, the line ends among them split in two.
            assert len(session.chunks) > 20
            assert b"\r" in session.chunks

    on(loop_name, scenario)


@LOOPS
def test_a_reply_to_an_abandoned_wait_never_shifts_the_pairing(loop_name: str) -> None:
    async def scenario() -> None:
        relay = Relay(delays={b"SLOW 1": 0.3, b"SLOW 2": 0.3})
        async with relay, session_with(relay) as session:
            # Given up by cancelling the future, and by a wait_for around command().
            abandoned_replies: list[RawReply] = []
            abandoned = session.write(b"SLOW 1\r\n", 1, received=abandoned_replies)
            abandoned.cancel()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(session.command(b"SLOW 2\r\n"), 0.05)
            assert await session.command(b"NEXT\r\n") == RawReply(250, "NEXT")
            assert await session.write(b"A\r\nB\r\n", 2) == [RawReply(250, "A"), RawReply(250, "B")]
            assert abandoned_replies == [RawReply(250, "SLOW 1")]
            assert session.is_open

    on(loop_name, scenario)


# -- timeouts --------------------------------------------------------------------------------


@LOOPS
def test_silence_fails_every_pending_wait_with_timeout_and_drops_the_connection(
    loop_name: str,
) -> None:
    async def scenario() -> None:
        async with Relay(silent) as relay, session_with(relay, timeout=0.2) as session:
            started = time.monotonic()
            first = session.write(b"MAIL A\r\nRCPT B\r\n", 2)
            second = session.write(b"DATA\r\n", 1)
            with pytest.raises(TimeoutError):
                await first
            waited = time.monotonic() - started
            assert 0.19 <= waited < 1.0
            await assert_over(session, relay, second, TimeoutError)

    on(loop_name, scenario)


@LOOPS
def test_replies_that_keep_coming_do_not_time_out(loop_name: str) -> None:
    """Each group's wait starts when the one before it is answered, not when it was written:
    five replies 0.1 s apart take 0.5 s, longer than the 0.3 s timeout, and all is well."""

    async def scenario() -> None:
        delays = {f"C{n}".encode(): 0.1 for n in range(5)}
        async with Relay(delays=delays) as relay, session_with(relay, timeout=0.3) as session:
            started = time.monotonic()
            pending = [session.write(f"C{n}\r\n".encode(), 1) for n in range(5)]
            results = await asyncio.gather(*pending)
            assert time.monotonic() - started > 0.3
            assert results == [[RawReply(250, f"C{n}")] for n in range(5)]
            assert session.is_open

    on(loop_name, scenario)


async def test_a_write_timeout_shorter_than_the_session_s_is_kept() -> None:
    async with Relay(silent) as relay, session_with(relay, timeout=0.8) as session:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await session.command(b"RSET\r\n", timeout=0.1)
        assert time.monotonic() - started < 0.6  # the session's 0.8 s did not apply
        await hung_up(relay)


async def test_a_write_timeout_longer_than_the_session_s_is_kept() -> None:
    relay = Relay(delays={b"DATA": 0.5})
    async with relay, session_with(relay, timeout=0.2) as session:
        assert await session.command(b"DATA\r\n", timeout=2.0) == RawReply(250, "DATA")
        assert session.is_open


async def test_a_queued_write_keeps_its_own_timeout() -> None:
    relay = Relay(delays={b"B": 0.8})
    async with relay, session_with(relay, timeout=0.3) as session:
        first = session.write(b"A\r\n", 1)
        second = session.write(b"B\r\n", 1, timeout=3.0)
        assert await first == [RawReply(250, "A")]
        assert await second == [RawReply(250, "B")]


async def test_quit_behind_an_abandoned_command_keeps_its_timeout() -> None:
    async with Relay(silent) as relay, session_with(relay, timeout=1.5) as session:
        session.write(b"MAIL A\r\n", 1).cancel()
        started = time.monotonic()
        await session.quit(0.2)
        assert time.monotonic() - started < 0.8


@LOOPS
def test_content_still_leaving_is_not_silence(loop_name: str) -> None:
    """A relay that reads slowly but steadily is not silent: each time the transport's
    buffer drains the wait starts again. A 32 MiB write, with a 1.2 s timeout, to a relay
    that reads 4 MiB every 0.3 s (about 2.4 s in all, twice the timeout) and answers 0.25 s
    after the end. (The timeout leaves room for a loaded machine: at 0.6 s, one late read of
    4 MiB under a full CI run was taken for silence.)"""
    size, step = 32 << 20, 4 << 20

    async def slow_reader(
        relay: Relay, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        for _ in range(size // step):
            await asyncio.sleep(0.3)
            await reader.readexactly(step)
        await asyncio.sleep(0.25)
        writer.write(f"250 got {size}\r\n".encode())
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        relay = Relay(converse=slow_reader)
        async with relay, session_with(relay, timeout=1.2) as session:
            started = time.monotonic()
            assert await session.write(b"x" * size, 1) == [RawReply(250, f"got {size}")]
            assert time.monotonic() - started > 1.5
            assert session.pauses >= 1
            assert session.all_written

    on(loop_name, scenario)


@LOOPS
def test_a_relay_that_stops_reading_fails_the_write_within_the_timeout(loop_name: str) -> None:
    """Writing paused for good is silence too: the wait fails with WriteStalledError after
    the timeout, the connection is dropped, and the unwritten rest is known."""
    size = 16 << 20

    async def never_reads(
        relay: Relay, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        relay = Relay(converse=never_reads)
        async with relay, session_with(relay, timeout=0.4) as session:
            started = time.monotonic()
            pending = session.write(b"x" * size, 1)
            later = session.write(b"QUIT\r\n", 1)
            with pytest.raises(WriteStalledError, match=r"read nothing of ours for 0\.4 s"):
                await asyncio.wait_for(pending, 10)
            assert 0.4 <= time.monotonic() - started < 1.5
            assert session.pauses >= 1
            assert not session.all_written
            with pytest.raises(WriteStalledError):
                await later
            assert not session.is_open

    on(loop_name, scenario)


# -- the relay closing, garbage, and closing ourselves ----------------------------------------


def closing_on_b(line: bytes) -> bytes | None:
    return {b"A": b"250 A\r\n", b"B": b"421 4.3.2 shutting down\r\n"}.get(line.strip())


@LOOPS
def test_a_421_answers_every_pending_command_and_closes(loop_name: str) -> None:
    async def scenario() -> None:
        async with Relay(closing_on_b) as relay, session_with(relay) as session:
            first = session.write(b"A\r\nB\r\nC\r\n", 3)
            second = session.write(b"D\r\n", 1)
            closing = RawReply(421, "4.3.2 shutting down")
            assert await first == [RawReply(250, "A"), closing, closing]
            assert await second == [closing]
            await assert_over(session, relay)  # the relay left it open; we closed it

    on(loop_name, scenario)


@LOOPS
def test_an_unasked_for_421_closes_the_session(loop_name: str) -> None:
    async def scenario() -> None:
        relay = Relay(lambda line: b"250 ok\r\n421 4.4.2 idle for too long\r\n")
        async with relay, session_with(relay) as session:
            assert await session.command(b"NOOP\r\n") == RawReply(250, "ok")
            await assert_over(session, relay, command=b"MAIL A\r\n")

    on(loop_name, scenario)


@pytest.mark.parametrize(
    "garbage",
    [b"hello there\r\n", b"25\r\n", b"2500 too many digits\r\n", b"\r\n", b"2" * 70_000],
    ids=["words", "short", "four-digits", "empty-line", "endless-line"],
)
@LOOPS
def test_a_line_that_is_no_smtp_reply_fails_the_session(loop_name: str, garbage: bytes) -> None:
    async def scenario() -> None:
        answers = {b"A": b"250 A\r\n", b"B": garbage}
        relay = Relay(lambda line: answers.get(line.strip()))
        async with relay, session_with(relay) as session:
            received: list[RawReply] = []
            first = session.write(b"A\r\nB\r\nC\r\n", 3, received=received)
            second = session.write(b"D\r\n", 1)
            with pytest.raises(MalformedReplyError, match="not an SMTP reply"):
                await first
            assert received == [RawReply(250, "A")]
            await assert_over(session, relay, second, MalformedReplyError)

    on(loop_name, scenario)


@LOOPS
def test_the_relay_hanging_up_fails_what_is_pending(loop_name: str) -> None:
    async def scenario() -> None:
        relay = Relay(lambda line: b"250 A\r\n" if line == b"A\r\n" else None, hang_up_on=b"D\r\n")
        async with relay, session_with(relay) as session:
            received: list[RawReply] = []
            first = session.write(b"A\r\nB\r\nC\r\n", 3, received=received)
            second = session.write(b"D\r\n", 1)
            with pytest.raises(SessionClosedError):
                await first
            assert received == [RawReply(250, "A")]  # which command was left unanswered
            await assert_over(session, pending=second)

    on(loop_name, scenario)


async def test_the_relay_hanging_up_halfway_through_a_multiline_reply() -> None:
    relay = Relay(lambda line: b"250-first of two lines\r\n", hang_up_on=b"EHLO\r\n")
    async with relay, session_with(relay) as session:
        with pytest.raises(SessionClosedError):
            await session.command(b"EHLO\r\n")


@LOOPS
def test_abort_fails_pending_waits_at_once_and_drops_the_connection(loop_name: str) -> None:
    async def scenario() -> None:
        async with Relay(silent) as relay, session_with(relay) as session:
            pending = session.write(b"MAIL A\r\nRCPT B\r\n", 2)
            later = session.write(b"DATA\r\n", 1)
            session.abort()
            assert pending.done()
            assert later.done()
            with pytest.raises(SessionClosedError):
                await pending
            with pytest.raises(SessionClosedError):
                await later
            assert not session.is_open
            await hung_up(relay)
            with pytest.raises(SessionClosedError):
                session.write(b"RSET\r\n", 1)

    on(loop_name, scenario)


def bye(line: bytes) -> bytes | None:
    return b"221 2.0.0 bye\r\n" if line == b"QUIT\r\n" else echo(line)


@pytest.mark.parametrize(
    ("answer", "hang_up_on"),
    [(bye, b"QUIT\r\n"), (silent, b"QUIT\r\n"), (silent, None)],
    ids=["221-then-close", "close-without-reply", "no-reply"],
)
@LOOPS
def test_quit_says_quit_closes_and_never_raises(
    loop_name: str, answer: Answer, hang_up_on: bytes | None
) -> None:
    async def scenario() -> None:
        relay = Relay(answer, hang_up_on=hang_up_on)
        async with relay, session_with(relay, timeout=0.2) as session:
            started = time.monotonic()
            await session.quit(0.2)
            assert time.monotonic() - started < 1.0
            assert relay.lines == [b"QUIT\r\n"]
            assert not session.is_open
            with pytest.raises(SessionClosedError):
                session.write(b"MAIL A\r\n", 1)

    on(loop_name, scenario)


async def test_quit_on_a_closed_session_writes_nothing() -> None:
    async with Relay() as relay, session_with(relay) as session:
        assert await session.command(b"NOOP\r\n") == RawReply(250, "NOOP")
        session.abort()
        await session.quit(1.0)
        await hung_up(relay)
        assert relay.lines == [b"NOOP\r\n"]


async def test_extensions_are_looked_up_without_regard_to_case() -> None:
    async with Relay() as relay:
        async with session_with(relay, extensions={"pipelining": "", "size": "1000"}) as session:
            assert session.pipelining
            assert session.supports("PIPELINING")
            assert session.supports("Size")
            assert session.extensions["size"] == "1000"
            assert not session.supports("starttls")
        async with session_with(relay, extensions={"size": "1000"}) as session:
            assert not session.pipelining
            assert await session.command(b"MAIL A\r\n") == RawReply(250, "MAIL A")

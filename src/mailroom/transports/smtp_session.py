"""The mail transaction's wire: pipelined SMTP commands over a connection already set up.

aiosmtplib opens the connection (greeting, EHLO, STARTTLS, AUTH) and then hands its socket
to a :class:`Session`. The session exists because profiles showed aiosmtplib's per-command
path (a lock, a timer and a fresh future per command, re-parsed addresses) costing more than
the rest of the worker, and because its protocol keeps one reply at a time, which rules out
PIPELINING (RFC 2920): MAIL, every RCPT and DATA written at once, the replies read back in
order, one round trip instead of two plus one per recipient.

A session knows nothing about verdicts or recipients; it writes bytes and hands back replies
in the order the commands went out, or raises :class:`SessionClosedError` (the relay hung up),
:class:`MalformedReplyError`, :class:`TimeoutError`, or :class:`WriteStalledError` (the relay
stopped reading what we write).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import NamedTuple

from mailroom.transports.smtp_replies import ReplyCode

__all__ = [
    "MalformedReplyError",
    "RawReply",
    "Session",
    "SessionClosedError",
    "WriteStalledError",
    "dot_stuffed",
]

# RFC 5321 §4.5.3.1.5 allows 512 octets a reply line; relays exceed it in multiline EHLO
# answers, so be generous, but a peer that never ends a line must not fill our memory.
_MAX_PENDING_OCTETS = 64 * 1024
# Large writes (message content) are handed to the transport this much at a time, and only
# while it is not paused, so its buffer's pause and resume tell whether the relay is still
# reading. A single write of the whole message would move it all into the socket layer's
# buffer at once (through TLS too, which encrypts its whole backlog in one go), leaving
# nothing to tell a relay that reads slowly from one that stopped reading.
_CHUNK = 256 * 1024


class RawReply(NamedTuple):
    """A reply as read off the wire: its code, and its text with any enhanced status code
    still in it (split only where needed: :meth:`mailroom.transports.smtp_replies.Reply.parse`)."""

    code: int
    text: str


class SessionClosedError(ConnectionError):
    """The relay closed the connection (or it broke) before all replies came."""


class MalformedReplyError(ConnectionError):
    """The relay sent something that is not an SMTP reply; the connection is unusable."""


class WriteStalledError(TimeoutError):
    """The relay stopped reading: what we were writing could not leave within the timeout.
    Some of it never left this machine, so the relay cannot have accepted it."""


def dot_stuffed(data: bytes) -> bytes:
    """The content as written after DATA: a line's leading dot doubled, ended by CRLF.CRLF
    (RFC 5321 §4.5.2). ``bytes.replace`` does it in one pass in C."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    stuffed = data.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


class _Group:
    """Commands written together, and the replies they drew so far."""

    __slots__ = ("expected", "future", "replies", "timeout")

    def __init__(
        self,
        future: asyncio.Future[list[RawReply]],
        expected: int,
        replies: list[RawReply],
        timeout: float,
    ) -> None:
        self.future = future
        self.expected = expected
        self.replies = replies
        self.timeout = timeout  # counted from when the group before it is answered


class Session(asyncio.Protocol):
    """Replies to pipelined commands, matched to them in order (RFC 2920 §3.1).

    Created on a connected transport; takes it over from whatever protocol had it.

    Timeouts are kept by a watchdog that looks a few times per timeout period, not by a
    timer per command: at thousands of messages a second, arming and cancelling timers was
    a measurable share of the worker's time. A relay that stays silent past its deadline
    has the connection dropped, and every reply still expected fails with TimeoutError.

    The deadline holds while we are still writing, too. Content leaves in chunks as the
    relay reads it; each time the transport's buffer drains (``resume_writing``) the relay
    has shown it is reading and the wait starts again, as RFC 5321 §4.5.3.2.5 times each
    block of data rather than the whole. A relay that reads nothing for the whole timeout
    fails the wait with :class:`WriteStalledError`.
    """

    def __init__(
        self, transport: asyncio.Transport, extensions: Mapping[str, str], timeout: float
    ) -> None:
        self.extensions = dict(extensions)
        self.pipelining = "pipelining" in self.extensions
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._buffer = bytearray()
        self._continued: list[bytes] = []  # the lines of a multiline reply so far
        self._groups: deque[_Group] = deque()
        self._deadline = 0.0  # loop time by which the oldest expected reply must be in
        self._closed: BaseException | None = None
        self._writing_paused = False  # the transport's buffer is full: wait for it to drain
        self._unsent: deque[memoryview] = deque()  # written by the caller, not yet handed on
        self._watch_every = max(0.01, min(1.0, timeout / 4))
        self._watchdog = self._loop.call_later(self._watch_every, self._watch)
        transport.set_protocol(self)

    # -- what the transaction code uses ---------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._closed is None and not self._transport.is_closing()

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    def write(
        self,
        data: bytes,
        replies: int,
        timeout: float | None = None,
        received: list[RawReply] | None = None,
    ) -> asyncio.Future[list[RawReply]]:
        """Write ``data`` (one or more commands, or message content); the future gets the
        ``replies`` replies it draws, in order, within ``timeout`` (default: the session's).

        Replies are appended to ``received`` as they come, so after a failure the caller
        can tell which command was left unanswered.
        """
        if self._closed is not None or self._transport.is_closing():
            raise SessionClosedError("the connection is closed")
        future: asyncio.Future[list[RawReply]] = self._loop.create_future()
        group = _Group(
            future,
            replies,
            [] if received is None else received,
            self.timeout if timeout is None else timeout,
        )
        if not self._groups:
            self._deadline = self._loop.time() + group.timeout
        self._groups.append(group)
        if self._unsent or len(data) > _CHUNK:
            self._unsent.append(memoryview(data))
            self._flush()
        else:
            self._transport.write(data)
        return future

    def _flush(self) -> None:
        """Hand unsent bytes to the transport, a chunk at a time, until it pauses us."""
        unsent = self._unsent
        # pause_writing() is called from inside transport.write() once its buffer is full.
        while unsent and not self._writing_paused and not self._transport.is_closing():
            head = unsent[0]
            if len(head) > _CHUNK:
                self._transport.write(head[:_CHUNK])
                unsent[0] = head[_CHUNK:]
            else:
                self._transport.write(head)
                unsent.popleft()

    async def command(self, line: bytes, timeout: float | None = None) -> RawReply:
        """One command, one reply: for relays without PIPELINING, RSET and QUIT."""
        return (await self.write(line, 1, timeout))[0]

    def abort(self) -> None:
        """Drop the connection now; whatever is still expected fails with SessionClosedError."""
        self._unsent.clear()
        self._transport.abort()
        self._fail_waiting(SessionClosedError("the connection was closed by us"))

    @property
    def all_written(self) -> bool:
        """Whether everything written has been handed to the transport and (as far as it can
        tell) left it: the bytes may still be in the kernel's buffers. Kept after a failure,
        to tell whether the relay can have seen the end of what we wrote."""
        return not self._unsent and self._transport.get_write_buffer_size() == 0

    async def quit(self, timeout: float) -> None:
        """QUIT politely (RFC 5321 §4.1.1.10) and close; never raises."""
        try:
            if self.is_open:
                # Bounded as a whole: the QUIT may sit behind a command nobody waits for.
                async with asyncio.timeout(timeout):
                    await self.command(b"QUIT\r\n", timeout)
        except (OSError, TimeoutError):
            pass
        finally:
            self._watchdog.cancel()
            self._transport.close()

    def _watch(self) -> None:
        if self._closed is not None:
            return
        if self._groups and self._loop.time() > self._deadline:
            waited = self._groups[0].timeout
            error: TimeoutError
            if self._writing_paused or self._unsent or self._transport.get_write_buffer_size():
                # Bytes of ours still here after the whole wait: the relay stopped reading.
                error = WriteStalledError(f"the relay read nothing of ours for {waited:g} s")
            else:
                error = TimeoutError(f"no reply within {waited:g} s")
            self._transport.abort()
            self._fail_waiting(error)
            return
        self._watchdog = self._loop.call_later(self._watch_every, self._watch)

    # -- asyncio.Protocol ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        lines_end = buffer.rfind(b"\n") + 1
        while start < lines_end:
            # A reply is lines "250-..." up to one "250 ..." (RFC 5321 §4.2.1).
            end = buffer.index(b"\n", start) + 1
            line = buffer[start:end]
            start = end
            if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in b" -\r\n":
                self._malformed(bytes(line))
                return
            if line[3:4] == b"-":
                self._continued.append(bytes(line[4:]).strip())
                continue
            text_lines = [*self._continued, bytes(line[4:]).strip()]
            self._continued = []
            self._deliver(
                RawReply(int(line[:3]), b"\n".join(text_lines).decode("utf-8", "replace"))
            )
        del buffer[:start]
        if len(buffer) > _MAX_PENDING_OCTETS:
            self._malformed(bytes(buffer[:80]))

    def _deliver(self, reply: RawReply) -> None:
        # Each reply belongs to the oldest command still unanswered, even if whoever waited
        # for it has given up (a cancelled future): pairing must never shift.
        groups = self._groups
        if groups:
            group = groups[0]
            group.replies.append(reply)
            if len(group.replies) == group.expected:
                groups.popleft()
                if not group.future.done():
                    group.future.set_result(group.replies)
                if groups:  # the next group's wait starts now
                    self._deadline = self._loop.time() + groups[0].timeout
        # Otherwise a reply nobody asked for (a 421 before closing, say): nothing to pair.
        if reply.code == ReplyCode.CLOSING:
            # RFC 5321 §3.8: the relay is closing the channel. Every command still waiting
            # gets this same answer (it is the truth about them), and nothing more is sent.
            while groups:
                group = groups.popleft()
                group.replies += [reply] * (group.expected - len(group.replies))
                if not group.future.done():
                    group.future.set_result(group.replies)
            self._closed = SessionClosedError(f"the relay is closing the connection: {reply.text}")
            self._transport.close()

    def _malformed(self, sample: bytes) -> None:
        error = MalformedReplyError(f"not an SMTP reply: {sample[:80]!r}")
        self._fail_waiting(error)
        self._closed = error
        self._transport.abort()

    def _fail_waiting(self, error: BaseException) -> None:
        while self._groups:
            group = self._groups.popleft()
            if not group.future.done():
                group.future.set_exception(error)
                group.future.exception()  # retrieved: nobody may await after a failure

    def eof_received(self) -> bool:
        self._fail_waiting(SessionClosedError("the relay closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        error = SessionClosedError("the connection was lost" + (f": {exc}" if exc else ""))
        if exc is not None:
            error.__cause__ = exc
        self._closed = error
        self._watchdog.cancel()
        self._fail_waiting(error)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._groups:  # the relay is reading: the wait starts again from now
            self._deadline = self._loop.time() + self._groups[0].timeout
        self._flush()

"""A relay that goes quiet at a chosen point of the SMTP dialogue, for timeout tests.

A few lines of SMTP over ``asyncio.start_server`` on 127.0.0.1 (or ``host``), port 0, in the
test's own event loop. It answers like a plain relay (greeting, EHLO, MAIL, RCPT, DATA, the content,
RSET, QUIT) until it reaches the point named by ``stall_at``; from there on it neither
answers nor reads the socket (asyncio's stream reader stops reading once its buffer holds
128 KiB), and keeps the connection open until the test ends:

- ``GREETING``: accepts the connection and never says 220;
- ``EHLO``, ``STARTTLS``, ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``: reads that command and never
  answers it (``STARTTLS``: answers 220 and never starts the TLS handshake);
- ``CONTENT``: answers DATA with 354 and then stops reading — with a message of a few MB the
  socket buffers fill and the client cannot write the rest;
- ``DOT``: reads the whole content and never answers the final dot.

With ``read_rate`` (bytes a second) it reads the content slowly but steadily instead, never
pausing long enough for a timeout of the client's to fire, and answers 250 at the end; its
receive buffer is made small, so the client's writes follow its reading closely.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from enum import StrEnum

from support.local_server import LocalServer


class StallAt(StrEnum):
    GREETING = "GREETING"
    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    CONTENT = "CONTENT"
    DOT = "DOT"


class StallingRelay(LocalServer):
    def __init__(
        self,
        stall_at: StallAt | None,
        *,
        pipelining: bool = True,
        implicit_tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        read_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.stall_at = stall_at
        self.host = host
        self.pipelining = pipelining
        self.implicit_tls = implicit_tls
        self.read_rate = read_rate
        self.content_read = 0
        """Bytes of content read so far (all connections)."""
        self.stalled = asyncio.Event()
        """Set when a connection reached the stall point."""
        self.connections = 0
        self.ehlo_names: list[str] = []
        self.messages: list[bytes] = []
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> StallingRelay:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        limit = 2**16  # asyncio's default: its reader stops reading at twice that
        if self.read_rate is not None:
            # Accepted connections inherit it: the kernel buffers little on our side.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            limit = 16 * 1024
        listener.bind((self.host, 0))
        await self.listen(sock=listener, ssl=self.implicit_tls, limit=limit)
        return self

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self._converse(reader, writer)

    async def _stall(self) -> None:
        self.stalled.set()
        await asyncio.sleep(3600)

    def _ehlo_reply(self) -> bytes:
        extensions = [b"relay.example.com", b"SIZE 104857600", b"8BITMIME"]
        extensions += [b"PIPELINING"] * self.pipelining
        extensions += [b"STARTTLS", b"AUTH PLAIN LOGIN"]
        *first, last = extensions
        return b"".join([b"250-" + e + b"\r\n" for e in first] + [b"250 " + last + b"\r\n"])

    async def _content(self, reader: asyncio.StreamReader) -> bool:
        """Read the content up to the final dot (or stall); False if the client hung up."""
        if self.stall_at is StallAt.CONTENT:
            await self._stall()
        content = bytearray()
        while not content.endswith(b"\r\n.\r\n"):
            if self.read_rate is None:
                chunk = await reader.read(1 << 20)
            else:
                # A tenth of a second's worth, then a tenth of a second's rest.
                chunk = await reader.read(max(1, self.read_rate // 10))
                await asyncio.sleep(0.1)
            if not chunk:
                return False
            self.content_read += len(chunk)
            content += chunk
        self.messages.append(bytes(content))
        if self.stall_at is StallAt.DOT:
            await self._stall()
        return True

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stall_at is StallAt.GREETING:
            await self._stall()
        writer.write(b"220 relay.example.com ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                self.ehlo_names.append(line[5:].strip().decode("ascii", "replace"))
            if self.stall_at is not None and verb == self.stall_at.encode():
                if self.stall_at is StallAt.STARTTLS:
                    writer.write(b"220 2.0.0 go ahead\r\n")
                await self._stall()
            if verb == b"EHLO":
                writer.write(self._ehlo_reply())
            elif verb == b"AUTH":
                writer.write(b"235 2.7.0 authenticated\r\n")
            elif verb == b"DATA":
                writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                if not await self._content(reader):
                    return
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            await writer.drain()

"""Request bodies over ``API_MAX_BODY_BYTES`` get 413 in the one error shape.

A pure ASGI middleware that counts the bytes as they arrive, so a chunked body (no
``Content-Length``) or a body longer than its ``Content-Length`` claims is stopped the same
way: the route reading it gets :class:`BodyTooLarge` (an HTTP 413, which the error handlers
answer) before more than the limit is held in memory. A ``Content-Length`` over the limit is
refused at once, before a byte of the body is read.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailroom.web.errors import error_response

__all__ = ["BodyLimit", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised by ``receive`` once the body passes the limit. An HTTPException, so that
    FastAPI's body parsing passes it on rather than answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes (API_MAX_BODY_BYTES); send less "
            "at a time (e.g. a smaller batch)",
            # The rest of the body is not read: this connection is done.
            headers={"Connection": "close"},
        )


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:  # the route answered already and then read on: nothing more to say
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.max_bytes)
        headers = dict(error.headers or {})
        response = error_response(413, "body_too_large", error.detail, headers=headers)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one before we see it
    return None

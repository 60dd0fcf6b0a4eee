"""Request bodies over ``API_MAX_BODY_BYTES`` get 413 (``body_too_large``), read no further.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body
is counted as it arrives and refused once it passes the limit, so neither makes the process
buffer much more than the limit. It applies to every path: the public forms are small too.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailroom.web.errors import error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: answer 413 for an HTTP request body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Raised where the route reads its body; the app's handler answers it in
                    # the one error shape (code body_too_large).
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is over {self.limit} bytes (API_MAX_BODY_BYTES)"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "body_too_large",
            self._message(),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

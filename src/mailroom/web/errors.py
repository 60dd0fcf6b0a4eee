"""Every API error has one JSON shape: ``{"error": {"code", "message", "field"}}``.

``code`` is a stable machine-readable name (a client branches on it, never on the message);
``message`` is for people; ``field`` names the request field at fault, or is null.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "field_of",
    "install_error_handlers",
]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised by a route to answer with ``status`` and the error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """``extra``: more members of the body beside ``error`` (a batch's ``items``)."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        self.extra = extra


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field))
    return JSONResponse({**body.model_dump(), **(extra or {})}, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
}


def field_of(location: tuple[Any, ...]) -> str | None:
    """``("body", "to", 0)`` → ``"to[0]"``: the field as a client wrote it."""
    # Only the first part says where; a field may itself be called "body" (a campaign's).
    where = ("body", "query", "path", "header")
    parts = list(location[1:] if location and location[0] in where else location)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, FastAPI's own included, in the one shape."""

    # Starlette types a handler's exception as Exception; each is registered for one class.
    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        error = cast(ApiError, exc)
        return error_response(
            error.status,
            error.code,
            error.message,
            error.field,
            headers=error.headers,
            extra=error.extra,
        )

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        error = cast(StarletteHTTPException, exc)
        code = _STATUS_CODES.get(error.status_code, "error")
        headers = dict(error.headers) if error.headers else None
        return error_response(error.status_code, code, str(error.detail), None, headers=headers)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        error = cast(RequestValidationError, exc)
        first = error.errors()[0] if error.errors() else {}
        field = field_of(tuple(first.get("loc", ())))
        message = str(first.get("msg", "the request is not valid"))
        return error_response(422, "invalid", f"{field}: {message}" if field else message, field)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)

"""The send routes, answered without FastAPI's per-request machinery.

A send is the API's hot path, and FastAPI spent more time around it than the outbox spent
in it: solving the route's dependencies anew on every request, a thread hop for each plain
``def`` one (the caller's key, the route itself), ``json.loads`` and then a second pass of
pydantic over the dicts it made, and validating the answer once more on the way out.

A :func:`direct_route` keeps the endpoint it is declared with (its signature still makes
the OpenAPI document, so the schema is unchanged) but answers requests with a handler of its
own: the body read once, then one hop to a thread (the group commit's writer for a single
send, :mod:`mailroom.outbox.group_commit`; the loop's executor for a batch) that
authenticates the caller, validates the raw bytes in one pass
(:meth:`pydantic.BaseModel.model_validate_json`), builds and commits; the id is answered
only after the commit. Errors are raised as the exceptions
the app's handlers answer, in the same shape as FastAPI's own validation errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from email.message import Message as MimeHeader
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

__all__ = ["Handler", "direct_route", "in_thread", "parse_body"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Model = TypeVar("Model", bound=BaseModel)
Result = TypeVar("Result")


def direct_route(handler: Handler) -> type[APIRoute]:
    """A route class whose requests ``handler`` answers; its endpoint only documents it."""

    class DirectRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            return handler

    return DirectRoute


async def in_thread(work: Callable[[], Result]) -> Result:
    """``work()`` in the event loop's executor: one hop for the whole request."""
    return await asyncio.get_running_loop().run_in_executor(None, work)


def _is_json(content_type: str | None) -> bool:
    """As FastAPI reads ``Content-Type`` (strictly: none is not JSON)."""
    if not content_type:
        return False
    if content_type.startswith("application/json"):  # the common case, without a parse
        rest = content_type[len("application/json") :]
        if not rest or rest[0] in "; ":
            return True
    header = MimeHeader()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_body(model: type[Model], body: bytes, content_type: str | None) -> Model:
    """``body`` as ``model``, or the :class:`RequestValidationError` FastAPI would raise for
    it (locations under ``body``), which the app answers in its one error shape."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        if _is_json(content_type):
            return model.model_validate_json(body)
        # Not JSON: FastAPI validates the bytes themselves, which no model accepts.
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(errors) from None

"""The body limit on the real app (``create_app``) with a route that reads the body: every
way a body can come (one piece, chunked in many, a Content-Length over the limit) is counted
and stopped at API_MAX_BODY_BYTES with a 413 in the error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from mailroom.config import load_settings
from mailroom.web.app import create_app

LIMIT = 1000


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = load_settings(
        environ={"DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}", "API_MAX_BODY_BYTES": str(LIMIT)}
    )
    application = create_app(settings)
    seen: list[int] = []
    application.state.seen = seen

    @application.post("/echo-length")
    async def echo_length(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"length": len(body)}

    @application.post("/json")
    async def parsed(payload: dict[str, str]) -> dict[str, int]:
        return {"keys": len(payload)}

    yield application
    application.state.engine.dispose()


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


def assert_too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "body_too_large"
    assert f"{LIMIT} bytes (API_MAX_BODY_BYTES)" in error["message"]
    assert error["field"] is None
    assert answer.headers["connection"] == "close"


async def test_a_body_at_the_limit_passes(app: FastAPI) -> None:
    async with client(app) as http:
        answer = await http.post("/echo-length", content=b"x" * LIMIT)
        chunked = await http.post("/echo-length", content=chunks(10, LIMIT // 10))
    assert answer.json() == {"length": LIMIT}
    assert chunked.json() == {"length": LIMIT}


async def test_a_declared_length_over_the_limit_is_refused_unread(app: FastAPI) -> None:
    async with client(app) as http:
        answer = await http.post("/echo-length", content=b"x" * (LIMIT + 1))
    assert_too_large(answer)
    assert app.state.seen == []


async def test_a_chunked_body_is_counted_as_it_comes(app: FastAPI) -> None:
    async with client(app) as http:
        request = http.build_request("POST", "/echo-length", content=chunks(11, LIMIT // 10))
        assert "content-length" not in request.headers
        answer = await http.send(request)
    assert_too_large(answer)
    assert app.state.seen == []  # the route never got the body


async def test_fastapi_body_parsing_answers_413_not_400(app: FastAPI) -> None:
    async def json_chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}'

    async with client(app) as http:
        answer = await http.post(
            "/json", content=json_chunks(), headers={"content-type": "application/json"}
        )
    assert_too_large(answer)

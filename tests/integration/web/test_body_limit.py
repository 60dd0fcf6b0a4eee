"""A real ``mailroom serve`` refuses a body declared over API_MAX_BODY_BYTES at once, before
the body is sent (the chunked case is in tests/unit/web/test_body_limit.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from support.service import ServiceProcess


def test_a_declared_body_over_the_limit_gets_413_before_it_is_sent(tmp_path: Path) -> None:
    with ServiceProcess({"API_MAX_BODY_BYTES": "1000"}, ["--no-worker"], cwd=tmp_path) as service:
        host, port = service.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(
                b"POST /api/v1/messages HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                piece = connection.recv(65536)
                if not piece:
                    break
                answer += piece
    service.watch.check_text(answer.decode("utf-8", "replace"), "the 413 answer")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "body_too_large"
    assert "1000 bytes (API_MAX_BODY_BYTES)" in error["message"]

"""The access log's records lose the public endpoints' tokens, and keep the rest."""

from __future__ import annotations

import logging

import pytest

from mailroom.web.access_log import TokenPathFilter, install_token_filter

# uvicorn's own access record: message format and arguments.
FORMAT = '%s - "%s %s HTTP/%s" %d'


def access_line(path: str) -> str:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        FORMAT,
        ("127.0.0.1:5", "GET", path, "1.1", 200),
        None,
    )
    assert TokenPathFilter().filter(record)
    return record.getMessage()


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/unsubscribe/eyJhIjoxfQ.Zx.sig", "/unsubscribe/…"),
        ("/preferences/eyJhIjoxfQ.Zx.sig?x=1", "/preferences/…?x=1"),
        ("/trck/abc.def.ghi", "/trck/…"),
        ("/c/abc.def/ghi", "/c/…"),
        ("/mail/c/abc.def", "/mail/c/…"),  # under a root path
        ("/api/v1/messages/12", "/api/v1/messages/12"),
        ("/healthz", "/healthz"),
        ("/cats/abc", "/cats/abc"),
    ],
)
def test_a_token_in_a_path_is_replaced(path: str, logged: str) -> None:
    assert access_line(path) == f'127.0.0.1:5 - "GET {logged} HTTP/1.1" 200'


def test_installing_it_twice_filters_once() -> None:
    logger = logging.getLogger("mailroom.test.access")
    install_token_filter(logger.name)
    install_token_filter(logger.name)
    assert sum(isinstance(f, TokenPathFilter) for f in logger.filters) == 1

"""The admin templates' filters: times in UTC, how long ago, sizes; one-shot notices."""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import SimpleCookie

import pytest
from fastapi import Request, Response

from mailroom.web.admin.rendering import (
    FLASH_COOKIE,
    _read_flash,
    ago,
    filesize,
    flash,
    format_datetime,
    stored_value,
    templates,
)

NOW = 1_800_000_000.0


def test_datetime_is_utc_and_empty_for_no_time() -> None:
    assert format_datetime(0) == "1970-01-01 00:00:00 UTC"
    assert format_datetime(NOW) == "2027-01-15 08:00:00 UTC"
    assert format_datetime(None) == ""


def test_ago_counts_the_largest_unit() -> None:
    assert ago(NOW - 0.2, NOW) == "just now"
    assert ago(NOW - 1, NOW) == "1 second ago"
    assert ago(NOW - 180, NOW) == "3 minutes ago"
    assert ago(NOW - 7200, NOW) == "2 hours ago"
    assert ago(NOW - 3 * 86400, NOW) == "3 days ago"
    assert ago(NOW + 300, NOW) == "in 5 minutes"
    assert ago(None, NOW) == ""


def test_filesize_in_powers_of_1024() -> None:
    assert filesize(512) == "512 B"
    assert filesize(1536) == "1.5 KB"
    assert filesize(23 * 1024 * 1024) == "23.0 MB"
    assert filesize(None) == ""


def test_a_stored_value_reads_as_words_not_python() -> None:
    assert stored_value(False) == "off"
    assert stored_value(True) == "on"
    assert stored_value(["a", True]) == "a, on"
    assert stored_value(3) == "3"


def test_the_environment_escapes_and_has_the_filters() -> None:
    page = templates.from_string("{{ v }} {{ t | datetime }} {{ s | filesize }}")
    assert page.render(v="<b>", t=0, s=2048) == "&lt;b&gt; 1970-01-01 00:00:00 UTC 2.0 KB"


def _flashed(message: str) -> Mapping[str, str] | None:
    """What the next page reads of a notice ``flash`` left with ``message``."""
    response = Response()
    flash(response, message, "info")
    cookie = SimpleCookie(response.headers["set-cookie"])
    header = f"{FLASH_COOKIE}={cookie[FLASH_COOKIE].value}".encode()
    return _read_flash(Request({"type": "http", "headers": [(b"cookie", header)]}))


@pytest.mark.parametrize("character", ["é", "日", "😀", '"', "a"])
def test_a_long_notice_in_any_script_is_read_back(character: str) -> None:
    message = character * 500
    assert _flashed(message) == {"message": message, "kind": "info"}


def test_an_overlong_notice_is_cut_to_fit_not_lost() -> None:
    read = _flashed("日" * 5000)
    assert read is not None
    assert 500 <= len(read["message"]) < 5000
    assert set(read["message"]) == {"日"}

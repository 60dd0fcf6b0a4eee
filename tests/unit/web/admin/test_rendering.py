"""The admin templates' filters: times in UTC, how long ago, sizes."""

from __future__ import annotations

from mailroom.web.admin.rendering import ago, filesize, format_datetime, templates

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


def test_the_environment_escapes_and_has_the_filters() -> None:
    page = templates.from_string("{{ v }} {{ t | datetime }} {{ s | filesize }}")
    assert page.render(v="<b>", t=0, s=2048) == "&lt;b&gt; 1970-01-01 00:00:00 UTC 2.0 KB"

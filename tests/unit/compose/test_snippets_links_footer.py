"""Snippets of user text, deep links and the footer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.compose.footer import Footer, add_footer
from mailroom.compose.links import deep_link
from mailroom.compose.snippets import snippet
from mailroom.compose.text import html_to_text
from mailroom.errors import MessageError


@given(st.text(max_size=3000), st.integers(1, 2000), st.integers(10, 200))
def test_snippets_are_bounded_and_wrapped(text: str, limit: int, width: int) -> None:
    result = snippet(text, limit, width)
    assert len(result) <= limit + limit // width + 1  # wrapping adds line breaks, nothing else
    assert all(len(line) <= width for line in result.split("\n"))
    assert "\r" not in result


def test_a_long_unbroken_string_is_broken_and_cut() -> None:
    result = snippet("https://example.com/" + "x" * 10_000, limit=200, width=78)
    lines = result.split("\n")
    assert max(len(line) for line in lines) == 78
    assert result.endswith("…")
    assert len(result.replace("\n", "")) == 200


def test_log_lines_keep_their_breaks() -> None:
    assert snippet("line one\r\nline two\n\tindented") == "line one\nline two\n    indented"
    assert snippet(None) == ""
    assert snippet("short") == "short"


def test_deep_links() -> None:
    assert deep_link("https://app.example", "/tasks/42") == "https://app.example/tasks/42"
    assert deep_link("https://app.example/base/", "tasks/42", {"tab": "comments"}) == (
        "https://app.example/base/tasks/42?tab=comments"
    )
    assert deep_link("", "/tasks/42") is None
    assert deep_link("https://app.example", None) is None
    for outside in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)"):
        with pytest.raises(MessageError, match="link"):
            deep_link("https://app.example", outside)


def test_footer_goes_before_body_end_and_is_escaped() -> None:
    footer = Footer("Why <you> get this", "Unsubscribe", "https://a.example/u/t?x=1&y=2")
    text, html = add_footer("Body\n\n", "<html><BODY><p>b</p></Body ></html>", footer)
    assert text == ("Body\n\n-- \nWhy <you> get this\nUnsubscribe: https://a.example/u/t?x=1&y=2\n")
    assert html is not None
    assert html.startswith("<html><BODY><p>b</p><div")
    assert html.endswith("</div></Body ></html>")
    assert "Why &lt;you&gt; get this" in html
    assert 'href="https://a.example/u/t?x=1&amp;y=2"' in html
    assert add_footer("t", None, Footer("r")) == ("t\n\n-- \nr\n", None)


def test_html_to_text_edge_cases() -> None:
    assert html_to_text("") == ""
    assert html_to_text("<!-- only a comment -->") == ""
    assert html_to_text("<p><a href='mailto:ada@example.com'>Ada</a></p>") == (
        "Ada (ada@example.com)\n"
    )
    assert html_to_text("<p><a href='#top'>top</a> <a href='javascript:x()'>js</a></p>") == (
        "top js\n"
    )
    long_paragraph = "<p>" + "word " * 100 + "</p>"
    assert all(len(line) <= 78 for line in html_to_text(long_paragraph).splitlines())

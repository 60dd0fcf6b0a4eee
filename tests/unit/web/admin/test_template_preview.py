"""The template preview's parts: errors named by part and line, the sample context read from
JSON, and the store that keeps rendered HTML for its frame (per admin, bounded, expiring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.compose.templates import TemplateLibrary
from mailroom.web.admin.template_preview import (
    PartError,
    PreviewStore,
    read_context,
    render_preview,
)

NOW = 1_800_000_000.0


def preview(**parts: str | None) -> tuple[PartError, ...]:
    found = render_preview(
        TemplateLibrary(),
        "t",
        subject=parts.get("subject") or "",
        html=parts.get("html"),
        text=parts.get("text"),
        context_source=parts.get("context") or "{}",
    )
    return found.errors


def test_each_part_names_its_own_errors_with_their_lines() -> None:
    assert preview(subject="{{ a }}", html="x\n{{ b.c }}", text="1\n2\n{% endif %}") == (
        PartError("subject", 1, "'a' is undefined"),
        PartError("html", 2, "'b' is undefined"),
        PartError("text", 3, "syntax error: Encountered unknown tag 'endif'."),
    )
    assert preview(html="{{ 1 / 0 }}") == (
        PartError("html", 1, "ZeroDivisionError: division by zero"),
    )
    assert preview(html=None, text=None) == (
        PartError("html", None, "give an HTML body, a text body, or both"),
    )


def test_the_parts_render_against_the_context() -> None:
    found = render_preview(
        TemplateLibrary(),
        "t",
        subject="Hi\n  {{ n }}",
        html="<p>{{ n }} &amp; {{ tag }}</p>",
        text=None,
        context_source='{"n": 3, "tag": "<b>"}',
    )
    assert found.errors == ()
    assert found.subject == "Hi 3"
    assert found.html is not None
    assert "<p>3 &amp; &lt;b&gt;</p>" in found.html
    assert found.text == "3 & <b>\n"  # made from the HTML


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("[1]", PartError("context", 1, "the sample context is a JSON object: { ... }")),
        (
            '{\n"a": 1\n"b": 2}',
            PartError("context", 3, "not valid JSON: Expecting ',' delimiter"),
        ),
        ("[" * 100_000, PartError("context", None, "not valid JSON: nested too deeply")),
    ],
)
def test_the_sample_context_is_a_json_object(source: str, error: PartError) -> None:
    assert read_context(source) == ({}, error)
    assert preview(html="<p>{{ x }}</p>", context=source) == (error,)


def test_an_empty_sample_context_is_an_empty_object() -> None:
    assert read_context("  \n") == ({}, None)
    assert read_context('{"a": [1]}') == ({"a": [1]}, None)


def test_the_store_keeps_each_admins_previews_for_them_alone() -> None:
    store = PreviewStore()
    mine = store.put(1, "<p>mine</p>", NOW)
    assert store.get(1, mine, NOW + 60) == "<p>mine</p>"
    assert store.get(2, mine, NOW + 60) is None  # another admin
    assert store.get(1, "unknown", NOW) is None
    assert store.get(1, mine, NOW + 16 * 60) is None  # expired


def test_the_store_keeps_a_few_previews_per_admin() -> None:
    store = PreviewStore()
    tokens = [store.put(1, f"<p>{n}</p>", NOW + n) for n in range(10)]
    other = store.put(2, "<p>other</p>", NOW)
    kept = [token for token in tokens if store.get(1, token, NOW + 10) is not None]
    assert kept == tokens[2:]  # the newest eight
    assert store.get(2, other, NOW + 10) == "<p>other</p>"


def test_the_store_drops_the_oldest_past_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailroom.web.admin.template_preview._MAX_TOTAL_CHARS", 100)
    store = PreviewStore()
    first = store.put(1, "a" * 60, NOW)
    second = store.put(2, "b" * 60, NOW + 1)
    assert store.get(1, first, NOW + 2) is None
    assert store.get(2, second, NOW + 2) == "b" * 60


def test_a_template_folder_is_read_for_the_preview(tmp_path: Path) -> None:
    (tmp_path / "inc.html").write_text("<i>{{ n }}</i>")
    library = TemplateLibrary([tmp_path])
    found = render_preview(
        library, "t", subject="s", html='{% include "inc.html" %}', text=None,
        context_source='{"n": 5}',
    )  # fmt: skip
    assert found.html is not None
    assert "<i>5</i>" in found.html

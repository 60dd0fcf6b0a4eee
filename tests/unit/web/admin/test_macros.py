"""The admin pages' shared macros (``admin/_macros.html``): the table box, the CSRF field and a
suppression entry's cells, as the pages import them (with the page's context)."""

from __future__ import annotations

from typing import Any

from mailroom.consent import queries as q
from mailroom.consent.listing import SuppressionEntry
from mailroom.outbox.vocabulary import SuppressionReason
from mailroom.web.admin.rendering import templates

NOW = 1_800_000_000.0
IMPORT = (
    '{% from "admin/_macros.html" import csrf_field, data_table, suppression_cells with context %}'
)


def render(source: str, **context: Any) -> str:
    page = templates.from_string(IMPORT + source)
    return page.render({"prefix": "/admin", "csrf_token": "tok<en>", **context})


def test_a_data_table_has_its_classes_headings_and_the_rows_given() -> None:
    html = render(
        '{% call data_table("wide", ["Name", ("Count", "num"), "<b>"]) %}<tr><td>x</td></tr>'
        "{% endcall %}"
    )
    assert '<div class="table-wrap">' in html
    assert '<table class="data wide">' in html
    assert (
        '<thead><tr><th scope="col">Name</th><th scope="col" class="num">Count</th>'
        '<th scope="col">&lt;b&gt;</th></tr></thead>'
    ) in html
    assert "<tbody>\n<tr><td>x</td></tr>\n    </tbody>" in html
    assert '<table class="data">' in render('{% call data_table("", ["A"]) %}{% endcall %}')


def test_the_csrf_field_carries_the_page_token_escaped() -> None:
    assert render("{{ csrf_field() }}") == (
        '<input type="hidden" name="csrf_token" value="tok&lt;en&gt;">'
    )


def _entries(expires_at: float | None) -> list[Any]:
    fields = ("a@example.com", "type:news", SuppressionReason.MANUAL, NOW - 60, expires_at, "<i>")
    return [q.Suppression(*fields), SuppressionEntry(7, *fields)]


def test_suppression_cells_say_expired_the_same_for_both_kinds_of_entry() -> None:
    for expires_at, expired in ((NOW - 1, True), (NOW, True), (NOW + 1, False), (None, False)):
        for entry in _entries(expires_at):
            html = render("{{ suppression_cells(entry, 'Admin', now) }}", entry=entry, now=NOW)
            assert ("(expired)" in html) is expired, (expires_at, entry)
            assert ("<td>never</td>" in html) is (expires_at is None)
            assert "<td>&lt;i&gt;</td>" in html


def test_suppression_cells_name_the_remove_button_for_the_page_they_are_on() -> None:
    (entry, _) = _entries(None)
    listed = render("{{ suppression_cells(entry, 'Admin', now) }}", entry=entry, now=NOW)
    assert 'aria-label="Remove a@example.com (type:news)"' in listed
    assert 'name="back"' not in listed
    detail = render(
        "{{ suppression_cells(entry, 'Admin', now, back='detail') }}", entry=entry, now=NOW
    )
    assert 'aria-label="Remove for type:news"' in detail
    assert '<input type="hidden" name="back" value="detail">' in detail
    for html in (listed, detail):
        assert '<form method="post" action="/admin/suppressions/remove">' in html
        assert '<input type="hidden" name="csrf_token" value="tok&lt;en&gt;">' in html

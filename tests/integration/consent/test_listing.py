"""The suppression list a page at a time (what the CLI and the API list with): keyset pages
that neither repeat nor skip an entry when the list changes between them."""

from __future__ import annotations

from typing import Any

import pytest

from mailroom.consent import list_suppressions, suppress, unsuppress
from mailroom.consent import queries as q
from mailroom.consent.listing import MAX_PAGE, all_suppressions, entry_sources
from mailroom.errors import MessageError
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import SuppressionReason


def addresses(
    outbox: Outbox,
    *,
    after: int | None = None,
    limit: int = 10,
    search: str | None = None,
    scope: str | None = None,
) -> list[str]:
    with outbox.engine.connect() as connection:
        page = list_suppressions(connection, after=after, limit=limit, search=search, scope=scope)
    return [entry.address for entry in page]


def test_pages_hold_steady_while_the_list_changes(outbox: Outbox) -> None:
    for n in range(5):
        suppress(outbox.engine, f"u{n}@example.com", SuppressionReason.MANUAL)
    with outbox.engine.connect() as connection:
        first = list_suppressions(connection, after=None, limit=2, search=None, scope=None)
    assert [e.address for e in first] == ["u0@example.com", "u1@example.com"]
    # Between two pages: an entry before the cursor goes, a new one comes, one is updated.
    unsuppress(outbox.engine, "u0@example.com")
    suppress(outbox.engine, "new@example.com", SuppressionReason.COMPLAINT)
    suppress(outbox.engine, "u3@example.com", SuppressionReason.HARD_BOUNCE)
    rest = addresses(outbox, after=first[-1].id)
    assert rest == ["u2@example.com", "u3@example.com", "u4@example.com", "new@example.com"]


def test_search_and_scope(outbox: Outbox) -> None:
    suppress(outbox.engine, "Ada@Example.com", SuppressionReason.MANUAL)
    suppress(outbox.engine, "ada_b@example.com", SuppressionReason.MANUAL, scope="list:news")
    suppress(outbox.engine, "adaxb@example.com", SuppressionReason.MANUAL, scope="type:digest")
    assert addresses(outbox, search="ADA@") == ["ada@example.com"]
    assert addresses(outbox, search="ada_b") == ["ada_b@example.com"]  # _ is no wildcard
    assert addresses(outbox, search="%") == []
    assert addresses(outbox, scope="list:news") == ["ada_b@example.com"]
    assert addresses(outbox, scope="type:digest", search="ada") == ["adaxb@example.com"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": MAX_PAGE + 1}, "limit"),
        ({"after": -1}, "after"),
        ({"scope": "everything"}, "scope"),
    ],
)
def test_out_of_range_arguments_name_the_field(
    outbox: Outbox, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(MessageError) as caught:
        addresses(outbox, **kwargs)
    assert caught.value.field == field


def test_all_suppressions_reads_past_one_page(outbox: Outbox) -> None:
    total = MAX_PAGE + 3
    with outbox.engine.begin() as connection:
        for n in range(total):
            q.add_suppression(
                connection, f"bulk{n}@example.com", "all", SuppressionReason.MANUAL, now=1.0
            )
    with outbox.engine.connect() as connection:
        seen = [entry.address for entry in all_suppressions(connection)]
    assert seen == [f"bulk{n}@example.com" for n in range(total)]


def test_entry_sources_name_the_latest_change_that_put_each_entry_there(
    outbox: Outbox,
) -> None:
    engine = outbox.engine
    suppress(engine, "ada@example.com", SuppressionReason.MANUAL, source="cli")
    suppress(engine, "ada@example.com", SuppressionReason.MANUAL, scope="list:news", source="api")
    suppress(engine, "bob@example.com", SuppressionReason.HARD_BOUNCE, source="bounce")
    # Removed and added again: the entry is the newer one's.
    unsuppress(engine, "bob@example.com", source="admin")
    suppress(engine, "bob@example.com", SuppressionReason.UNSUBSCRIBED, source="link")
    with engine.begin() as connection:
        # An entry the consent log knows nothing of (written before the log was).
        q.add_suppression(
            connection, "old@example.com", "all", SuppressionReason.COMPLAINT, now=1.0
        )
    with engine.connect() as connection:
        page = list_suppressions(connection, after=None, limit=10, search=None, scope=None)
        sources = entry_sources(connection, page)
    assert {(e.address, e.scope): sources[e.id] for e in page} == {
        ("ada@example.com", "all"): "cli",
        ("ada@example.com", "list:news"): "api",
        ("bob@example.com", "all"): "link",
        ("old@example.com", "all"): None,
    }

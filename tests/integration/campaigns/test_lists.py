"""Mailing lists and their contacts on a real SQLite file and a real PostgreSQL database: the
list operations, the upsert and its merge, all-or-nothing adds, paging by id for the fan-out,
and the CSV import's batches, duplicates across them, and its report."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, func, select

from mailroom.campaigns.contacts import Contact
from mailroom.campaigns.contacts_csv import ContactsFile
from mailroom.campaigns.contacts_import import ImportResult, import_contacts
from mailroom.campaigns.lists import (
    ContactInput,
    ContactNotFoundError,
    ContactsError,
    ListExistsError,
    ListNotFoundError,
    add_contact,
    add_contacts,
    all_lists,
    contact_page,
    create_list,
    delete_list,
    find_list,
    get_contact,
    remove_contact,
    remove_contacts,
    update_contact,
)
from mailroom.consent import queries as consent_queries
from mailroom.consent import suppress
from mailroom.csv_lines import Rejected
from mailroom.errors import MessageError
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import contacts
from mailroom.outbox.vocabulary import SuppressionReason

QUOTES = " (a cell holding a comma must be in double quotes)"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def contact(engine: Engine, address: str, list_name: str = "news") -> Contact:
    with engine.connect() as connection:
        return get_contact(connection, list_name, address)


def stored(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(contacts)).scalar_one())


def test_lists_are_made_counted_and_deleted_with_their_contacts_not_their_unsubscribes(
    engine: Engine,
) -> None:
    made = create_list(engine, "news", description="Monthly news", now=100.0)
    assert (made.name, made.scope, made.contacts, made.created_at) == (
        "news",
        "list:news",
        0,
        100.0,
    )
    create_list(engine, "alerts")
    with pytest.raises(ListExistsError, match="a mailing list named 'news' already exists"):
        create_list(engine, "news")
    with pytest.raises(MessageError, match="list name: 'News' is not a list name"):
        create_list(engine, "News")
    add_contacts(engine, "news", [ContactInput(f"u{n}@example.com") for n in range(3)])
    add_contact(engine, "alerts", "ops@example.com")
    suppress(engine, "u1@example.com", SuppressionReason.UNSUBSCRIBED, scope="list:news")

    with engine.connect() as connection:
        assert [(x.name, x.contacts, x.description) for x in all_lists(connection)] == [
            ("alerts", 1, None),
            ("news", 3, "Monthly news"),
        ]
        assert find_list(connection, "news").contacts == 3

    assert delete_list(engine, "news") == 3
    assert stored(engine) == 1  # alerts' contact only
    with engine.connect() as connection, pytest.raises(ListNotFoundError, match="'news'"):
        find_list(connection, "news")
    with pytest.raises(ListNotFoundError):
        delete_list(engine, "news")
    with engine.connect() as connection:  # the unsubscribe outlives the list
        assert [e.scope for e in consent_queries.list_suppressions(connection)] == ["list:news"]


def test_adding_an_address_again_updates_it_and_merges_its_attributes(engine: Engine) -> None:
    create_list(engine, "news")
    ada, created = add_contact(
        engine, "news", "Ada Lovelace <ADA@Example.com>", attributes={"city": "London", "n": 1}
    )
    assert created
    assert (ada.address, ada.name, ada.attributes) == (
        "ada@example.com", "Ada Lovelace", {"city": "London", "n": 1}
    )  # fmt: skip

    again, created = add_contact(
        engine, "news", "ada@example.com", attributes={"n": 2, "vip": True, "city": None}
    )
    assert not created
    assert again.id == ada.id
    assert again.name == "Ada Lovelace"  # not given: kept
    assert again.attributes == {"n": 2, "vip": True}  # set, kept, and None removed
    assert again.created_at == ada.created_at < again.updated_at

    renamed, _ = add_contact(engine, "news", "ada@example.com", name="Countess")
    assert (renamed.name, renamed.attributes) == ("Countess", {"n": 2, "vip": True})
    cleared, _ = add_contact(engine, "news", "ada@example.com", name=None)
    assert cleared.name is None

    replaced = update_contact(engine, "news", "ADA@example.com", attributes={"plan": "gold"})
    assert (replaced.name, replaced.attributes) == (None, {"plan": "gold"})
    renamed = update_contact(engine, "news", "ada@example.com", name="Ada")
    assert (renamed.name, renamed.attributes) == ("Ada", {"plan": "gold"})
    with pytest.raises(ContactNotFoundError, match=r"the list 'news' has no contact 'bob@x\.org'"):
        update_contact(engine, "news", "Bob@X.org", name="Bob")

    assert contact(engine, "Ada <ADA@EXAMPLE.COM>").id == ada.id
    # The same time given twice (a test's clock) still tells an update from an addition.
    add_contact(engine, "news", "tick@example.com", attributes={"a": 1}, now=5.0)
    tick, created = add_contact(engine, "news", "tick@example.com", attributes={"b": 2}, now=5.0)
    assert (created, tick.attributes) == (False, {"a": 1, "b": 2})
    assert remove_contact(engine, "news", "ADA@example.com")
    assert not remove_contact(engine, "news", "ada@example.com")
    with pytest.raises(ContactNotFoundError):
        contact(engine, "ada@example.com")
    with pytest.raises(ListNotFoundError):
        add_contact(engine, "nope", "ada@example.com")


def test_an_add_of_many_is_all_or_nothing_and_names_every_fault(engine: Engine) -> None:
    create_list(engine, "news")
    with pytest.raises(ContactsError) as refused:
        add_contacts(
            engine,
            "news",
            [
                ContactInput("ok@example.com"),
                ContactInput("not an address"),
                ContactInput("OK@example.com"),
                ContactInput("x@example.com", attributes={"email": "x"}),
                ContactInput("y@example.com", name="\u202eevil"),
            ],
        )
    assert sorted(refused.value.errors) == [1, 2, 3, 4]
    assert "ok@example.com is contact 0 already" in str(refused.value.errors[2])
    assert str(refused.value).startswith("contact 1: address: 'not an address'")
    assert str(refused.value).endswith("(and 3 more); no contact was written")
    assert stored(engine) == 0

    result = add_contacts(engine, "news", [ContactInput("a@example.com"), ContactInput("b@x.io")])
    assert (result.created, result.updated) == (2, 0)
    full = {f"k{n}": n for n in range(45)}
    add_contact(engine, "news", "full@example.com", attributes=full)
    # Merged with what is stored, the attributes would be 51: refused, and the batch with it.
    with pytest.raises(ContactsError, match=r"contact 1: attributes: would have 51 attributes"):
        add_contacts(
            engine,
            "news",
            [
                ContactInput("a@example.com", name="A"),
                ContactInput("full@example.com", attributes={f"new{n}": n for n in range(6)}),
            ],
        )
    assert contact(engine, "a@example.com").name is None
    assert contact(engine, "full@example.com").attributes == full
    assert remove_contacts(engine, "news", ["A@example.com", "b@X.io", "c@example.com"]) == 2


def test_a_list_is_paged_by_id_and_an_update_keeps_a_contacts_place(engine: Engine) -> None:
    made = create_list(engine, "news")
    add_contacts(engine, "news", [ContactInput(f"u{n:02}@example.com") for n in range(25)])
    with engine.connect() as connection:
        first = contact_page(connection, made.id, after_id=None, limit=10)
    add_contact(engine, "news", "u03@example.com", attributes={"city": "Oslo"})
    add_contact(engine, "news", "late@example.com")
    seen = [c.address for c in first]
    after = first[-1].id
    with engine.connect() as connection:
        while page := contact_page(connection, made.id, after_id=after, limit=10):
            seen += [c.address for c in page]
            after = page[-1].id
    assert seen == [f"u{n:02}@example.com" for n in range(25)] + ["late@example.com"]


def run_import(
    engine: Engine, text: str, *, batch_size: int = 5000, seen_in_memory: int = 250_000
) -> tuple[list[Rejected], ImportResult]:
    rejected: list[Rejected] = []
    file = ContactsFile(io.StringIO(text, newline=""))
    result = import_contacts(
        engine,
        "news",
        file,
        report=rejected.append,
        batch_size=batch_size,
        seen_in_memory=seen_in_memory,
    )
    return rejected, result


@pytest.mark.parametrize("seen_in_memory", [250_000, 2])
def test_the_import_writes_in_batches_and_names_duplicates_across_them(
    engine: Engine, seen_in_memory: int
) -> None:
    """The acceptance file: bad addresses, duplicates (within a batch, across batches, after
    the addresses moved to SQLite) and wrong cell counts, each named with its line and why,
    in the file's order; everything else imported, 3 rows a transaction."""
    create_list(engine, "news")
    add_contact(engine, "news", "old@example.com", name="Old", attributes={"since": 2019})
    text = (
        "email,name,city\n"  # 1
        "a@example.com,A,Rome\n"  # 2
        "bad-address,B,Oslo\n"  # 3
        "A@EXAMPLE.com,A2,Lima\n"  # 4: the same as line 2, in the same batch
        "c@example.com,C\n"  # 5: too few cells
        "old@example.com,,Paris\n"  # 6: already in the list: updated
        "d@example.com,D,Kyiv\n"  # 7
        "e@example.com,E,Bonn\n"  # 8
        "f@example.com,F,Graz\n"  # 9
        "a@example.com,A3,Nice\n"  # 10: line 2 again, batches later
        "g@example.com,G,Baku,extra\n"  # 11: too many cells
        "d@example.com,D2,Riga\n"  # 12: line 7 again
    )
    commits: list[object] = []

    def counted(connection: object) -> None:
        commits.append(connection)

    event.listen(engine, "commit", counted)
    try:
        rejected, result = run_import(engine, text, batch_size=3, seen_in_memory=seen_in_memory)
    finally:
        event.remove(engine, "commit", counted)
    assert [(r.line, r.why) for r in rejected] == [
        ("3", "email: 'bad-address' is not an address (local@domain)"),
        ("4", "a@example.com is already on line 2"),
        ("5", f"2 cells, but the header has 3 columns{QUOTES}"),
        ("10", "a@example.com is already on line 2"),
        ("11", f"4 cells, but the header has 3 columns{QUOTES}"),
        ("12", "d@example.com is already on line 7"),
    ]  # fmt: skip
    assert (result.imported, result.updated, result.rejected) == (4, 1, 6)  # 11 rows
    assert len(commits) >= 3  # batches, not one transaction
    assert contact(engine, "a@example.com").name == "A"  # the first row of an address wins
    old = contact(engine, "old@example.com")
    assert (old.name, old.attributes) == (None, {"since": 2019, "city": "Paris"})

    # The same file again: nothing new, every good row an update, the same rows rejected.
    again, result = run_import(engine, text, batch_size=3, seen_in_memory=seen_in_memory)
    assert [r.line for r in again] == ["3", "4", "5", "10", "11", "12"]
    assert (result.imported, result.updated) == (0, 5)
    assert stored(engine) == 5


def test_an_import_without_a_name_column_keeps_names_and_a_row_over_the_bounds_is_named(
    engine: Engine,
) -> None:
    create_list(engine, "news")
    add_contact(
        engine, "news", "ada@example.com", name="Ada", attributes={f"k{n}": n for n in range(49)}
    )
    rejected, result = run_import(
        engine, "address,city,plan\nada@example.com,Oslo,gold\nbob@example.com,Rome,free\n"
    )
    assert [(r.line, r.why) for r in rejected] == [
        ("2", "ada@example.com: attributes: would have 51 attributes; at most 50")
    ]
    assert (result.imported, result.updated) == (1, 0)
    assert contact(engine, "bob@example.com").attributes == {"city": "Rome", "plan": "free"}
    assert contact(engine, "ada@example.com").name == "Ada"

    with pytest.raises(ListNotFoundError):
        import_contacts(
            engine, "nope", ContactsFile(io.StringIO("email\n")), report=rejected.append
        )


def test_an_error_while_writing_ends_the_import_and_keeps_what_was_written(
    engine: Engine,
) -> None:
    """The batches are written on a thread of their own: its error is the import's (here the
    report's pipe closes at the second rejected row), and the connection it wrote with is
    back to SQLite's default page cache."""
    create_list(engine, "news")
    text = "email\n" + "".join(
        f"u{n}@example.com\n" if n % 3 else f"bad{n}\n" for n in range(1, 30)
    )
    seen: list[Rejected] = []

    def report(row: Rejected) -> None:
        seen.append(row)
        if len(seen) == 2:
            raise BrokenPipeError("stderr closed")

    with pytest.raises(BrokenPipeError):
        import_contacts(
            engine, "news", ContactsFile(io.StringIO(text, newline="")), report=report, batch_size=4
        )
    assert [row.line for row in seen] == ["4", "7"]
    written = stored(engine)
    assert 4 <= written < 19  # the batches before the error, not the rest of the file
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA cache_size").scalar_one() == -2000

"""Reading a CSV file of contacts: the header's rules (a wrong one refuses the whole file), each
row a contact or a rejected row naming its line and why, empty lines counted, nothing dropped;
and the fast address path giving exactly what the full parser gives."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.campaigns import seen_addresses
from mailroom.campaigns.contacts import KEEP, parse_contact_address
from mailroom.campaigns.contacts_csv import ContactRow, ContactsFile, CsvFileRefusedError
from mailroom.campaigns.seen_addresses import SeenAddresses
from mailroom.consent.scopes import normalize_address
from mailroom.csv_lines import MAX_LINE, Rejected
from mailroom.errors import MessageError

QUOTES = " (a cell holding a comma must be in double quotes)"
TWO = " (two addresses? separate them with a comma)"
HEADER = ", which is not allowed in a header"


def read(text: str) -> tuple[ContactsFile, list[ContactRow | Rejected]]:
    file = ContactsFile(io.StringIO(text, newline=""))
    return file, list(file)


def test_rows_become_contacts_with_their_line() -> None:
    file, rows = read(
        "Email,Name,city,plan\n"
        "Ada@Example.COM, Ada  Lovelace ,London,gold\n"
        "bob@example.com,,  Paris ,\n"
        '"Carl Gauss <carl@example.com>",,"Göttingen, DE",free\n'
    )
    assert file.columns.address_name == "email"
    assert rows == [
        ContactRow(2, "ada@example.com", "Ada Lovelace", {"city": "London", "plan": "gold"}),
        # An empty cell: no name; an empty attribute is "" (every contact has every column).
        ContactRow(3, "bob@example.com", None, {"city": "Paris", "plan": ""}),
        # A name written with the address is the contact's when the row has none.
        ContactRow(4, "carl@example.com", "Carl Gauss", {"city": "Göttingen, DE", "plan": "free"}),
    ]


def test_without_a_name_column_the_name_is_kept() -> None:
    _, rows = read("address\nada@example.com\nAda <ada2@example.com>\n")
    assert rows == [
        ContactRow(2, "ada@example.com", KEEP, {}),
        ContactRow(3, "ada2@example.com", "Ada", {}),
    ]


def test_the_acceptance_file_names_each_rejected_row_and_why() -> None:
    """Bad addresses, wrong cell counts and unreadable rows each come back with their line
    (duplicates are the import's to find: it sees the whole file)."""
    file, rows = read(
        "email,name,city\n"  # 1
        "ok@example.com,Ok,Rome\n"  # 2
        "not-an-address,X,Y\n"  # 3
        "two@example.com,Two\n"  # 4: too few cells
        "three@example.com,Three,Oslo,extra\n"  # 5: too many
        ",Nobody,Lima\n"  # 6: no address
        "a b@example.com,,\n"  # 7
        "\n"  # 8: empty, skipped and counted
        ",,\n"  # 9: a row of empty cells, the same
        '"multi@example.com","Multi\nLine",Kyiv\n'  # 10-11: a name's line break is a blank
        '"split\nhere@example.com",S,Rome\n'  # 12-13: an address's is not
        '"open@example.com,quote\n'  # 14-15: the quote never closes, so the cell runs...
        "last@example.com,Last,Lagos\n"  # ...to the end of the file
    )
    rejected = [row for row in rows if isinstance(row, Rejected)]
    assert [row.line for row in rows if isinstance(row, ContactRow)] == [2, 10]
    assert rows[-3] == ContactRow(10, "multi@example.com", "Multi Line", {"city": "Kyiv"})
    assert [(r.line, r.why) for r in rejected] == [
        ("3", "email: 'not-an-address' is not an address (local@domain)"),
        ("4", f"2 cells, but the header has 3 columns{QUOTES}"),
        ("5", f"4 cells, but the header has 3 columns{QUOTES}"),
        ("6", "no address (the email cell is empty)"),
        ("7", f"email: 'a b@example.com' has a blank in it{TWO}"),
        ("12-13", f"email: contains a line break or NUL character{HEADER}"),
        ("14-15", f"1 cells, but the header has 3 columns{QUOTES}"),
    ]  # fmt: skip
    assert file.blank_lines == 2


def test_a_name_with_a_line_break_is_collapsed_and_one_with_a_control_refused() -> None:
    _, rows = read('email,name\n"a@example.com","Ada\nLovelace"\nb@example.com,B\x1b[2J\n')
    assert rows[0] == ContactRow(2, "a@example.com", "Ada Lovelace", {})
    assert isinstance(rows[1], Rejected)
    assert rows[1].line == "4"
    assert rows[1].why.startswith("name: 'B\\x1b[2J' holds U+001B")


def test_undecodable_bytes_a_nul_and_an_overlong_line_are_rows_rejected() -> None:
    raw = (
        b"email,city\n"
        b"latin1@example.com,K\xf6ln\n"
        b"nul@example.com,a\x00b\n" + b"long@example.com," + b"x" * MAX_LINE + b"\n"
        b"ok@example.com,Bonn\n"
    )
    file = ContactsFile(io.TextIOWrapper(io.BytesIO(raw), errors="surrogateescape", newline=""))
    rows = list(file)
    assert [(r.line, r.why) for r in rows if isinstance(r, Rejected)] == [
        ("2", "not valid UTF-8 (save the file as UTF-8)"),
        ("3", "holds a NUL character, which cannot be stored"),
        ("4", f"a line over {MAX_LINE} characters"),
    ]
    assert rows[-1] == ContactRow(5, "ok@example.com", KEEP, {"city": "Bonn"})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("name,city\nAda,London\n", "has no 'email' or 'address' column"),
        ("ada@example.com,Ada\n", "has no 'email' or 'address' column"),  # no header at all
        ("email,address\n", "has both 'email' and 'address': which is the address?"),
        ("Address,EMAIL,x\n", "has both 'email' and 'address'"),
        ("a,b,c,d,e,f,g,h\n", "('a', 'b', 'c', 'd', 'e', 'f', ...) has no 'email'"),
        ("email,city,City,city\n", "names 'city' twice"),
        ("Email,NAME,name\n", "names 'name' twice"),
        ("email,,city\n", "column 2 of the header has no name"),
        ("email,First Name\n", "column 'First Name': 'First Name' is not an attribute name"),
        ("email,2fa\n", "'2fa' is not an attribute name"),
        ("email,_secret\n", "'_secret' is not an attribute name"),
        ("email,items\n", "'items' cannot name an attribute (reserved:"),
        ("email," + ",".join(f"a{n}" for n in range(51)) + "\n", "51 attribute columns"),
        ("email,K\udcf6ln\n", "the header is not valid UTF-8"),
        ("email," + "x" * MAX_LINE + "\n", f"line 1: a line over {MAX_LINE} characters"),
    ],
)
def test_a_wrong_header_refuses_the_whole_file(text: str, says: str) -> None:
    with pytest.raises(CsvFileRefusedError) as refused:
        ContactsFile(io.StringIO(text, newline=""))
    assert says in str(refused.value)
    assert str(refused.value).endswith("nothing was imported")


def test_the_header_may_come_after_empty_lines_and_they_are_counted() -> None:
    file, rows = read("\n\nemail\nada@example.com\n")
    assert rows == [ContactRow(4, "ada@example.com", KEEP, {})]
    assert file.blank_lines == 2


# -- the address's fast path --------------------------------------------------------------

_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
_plainish = st.text(alphabet=_ATEXT + ".@-", min_size=1, max_size=80)
_any = st.text(min_size=1, max_size=80)


def same_as_the_full_parser(text: str) -> None:
    try:
        expected = normalize_address(text)
    except MessageError:
        with pytest.raises(MessageError):
            parse_contact_address(text)
        return
    assert parse_contact_address(text)[0] == expected


@given(st.one_of(_plainish, _any))
def test_the_fast_path_gives_exactly_what_the_full_parser_gives(text: str) -> None:
    same_as_the_full_parser(text)


@pytest.mark.parametrize(
    "text",
    [
        "a@b",
        "A.B@Example.COM",
        "x" * 64 + "@example.com",
        "x" * 65 + "@example.com",  # a local part over 64 octets
        "a@" + ".".join(["d" * 63] * 4),  # a domain over 253 characters
        "a@" + ".".join(["d" * 63] * 3 + ["d" * 61]),  # exactly 253
        "a@" + "d" * 64 + ".com",  # a label over 63
        "a@-example.com",
        "a@example-.com",
        "a..b@example.com",
        ".a@example.com",
        "a@example.com.",
        "a@example..com",
    ],
)
def test_the_fast_path_at_its_edges(text: str) -> None:
    same_as_the_full_parser(text)


# -- the addresses already met ------------------------------------------------------------


@pytest.mark.parametrize("in_memory", [1000, 2])
def test_seen_addresses_remember_the_first_line_in_memory_and_once_spilled(in_memory: int) -> None:
    with SeenAddresses(in_memory) as seen:
        seen.add([ContactRow(2, "a@x.org", KEEP, {}), ContactRow(3, "b@x.org", KEEP, {})])
        assert seen.first_lines(["b@x.org", "c@x.org"]) == {"b@x.org": 3}
        seen.add([ContactRow(9, "c@x.org", KEEP, {})])
        assert seen.spilled is (in_memory < 3)
        assert seen.first_lines(["a@x.org", "c@x.org", "d@x.org"]) == {"a@x.org": 2, "c@x.org": 9}
        many = [ContactRow(10 + n, f"u{n}@x.org", KEEP, {}) for n in range(2000)]
        seen.add(many)
        assert seen.first_lines([f"u{n}@x.org" for n in range(0, 2000, 7)]) == {
            f"u{n}@x.org": 10 + n for n in range(0, 2000, 7)
        }


def test_seen_addresses_stay_exact_when_addresses_share_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the dict, an address is kept by its 64-bit hash: two addresses with the same key
    (forced here: the key is the address's length) are still told apart."""
    monkeypatch.setattr(seen_addresses, "_key", len)
    with SeenAddresses(1) as seen:
        seen.add([ContactRow(2, "a@x.org", KEEP, {}), ContactRow(3, "b@x.org", KEEP, {})])
        assert seen.spilled
        seen.add([ContactRow(4, "c@x.org", KEEP, {}), ContactRow(5, "dd@x.org", KEEP, {})])
        assert seen.first_lines(["a@x.org", "b@x.org", "c@x.org", "dd@x.org", "e@x.org"]) == {
            "a@x.org": 2,
            "b@x.org": 3,
            "c@x.org": 4,
            "dd@x.org": 5,
        }

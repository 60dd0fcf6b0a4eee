"""``mailroom lists ...`` on a real SQLite file and PostgreSQL: the import's report names every
rejected row (stderr, or the one JSON document), its exit status says what happened, and the
list commands change and show what the operations do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import Result
from sqlalchemy import Engine

from mailroom.campaigns.lists import all_lists, contact_page, find_list
from support.cli_database import CLEAN, engine, run_command

__all__ = ["engine"]  # the fixture, used by name

ACCEPTANCE = (
    "email,name,city\n"  # 1
    "ada@example.com,Ada,London\n"  # 2
    "not-an-address,Nobody,Nowhere\n"  # 3: a bad address
    "bob@example.com,Bob\n"  # 4: too few cells
    "ADA@example.com,Ada again,Rome\n"  # 5: a duplicate of line 2
    "carl@example.com,Carl,Berlin,extra\n"  # 6: too many cells
    ",Anon,Paris\n"  # 7: no address
    "dora@example.com,Dora,Lima\n"  # 8
)


def run(engine: Engine, *args: str) -> Result:
    return run_command(engine, "lists", *args)


def contacts_of(engine: Engine, name: str) -> list[tuple[str, str | None, dict[str, object]]]:
    with engine.connect() as connection:
        found = find_list(connection, name)
        page = contact_page(connection, found.id, after_id=None, limit=1000)
    return [(c.address, c.name, dict(c.attributes)) for c in page]


def test_import_names_each_rejected_row_bad_addresses_duplicates_and_wrong_cells(
    engine: Engine, tmp_path: Path
) -> None:
    """The acceptance test of issue 14's CSV import."""
    source = tmp_path / "people.csv"
    source.write_text("\ufeff" + ACCEPTANCE, encoding="utf-8")  # a spreadsheet's BOM
    result = run(engine, "import", "news", str(source), "--create")
    assert result.exit_code == 1
    assert result.stdout == "imported 2, updated 0, rejected 5\n"
    named = result.stderr.splitlines()
    assert named[0] == "created the list news"
    assert named[1:6] == [
        f"{source}:3: email: 'not-an-address' is not an address (local@domain)",
        f"{source}:4: 2 cells, but the header has 3 columns (a cell holding a comma must be in "
        "double quotes)",
        f"{source}:5: ada@example.com is already on line 2",
        f"{source}:6: 4 cells, but the header has 3 columns (a cell holding a comma must be in "
        "double quotes)",
        f"{source}:7: no address (the email cell is empty)",
    ]
    assert named[6].startswith(f"mailroom: error: 5 rows of {source} were not imported")
    assert contacts_of(engine, "news") == [
        ("ada@example.com", "Ada", {"city": "London"}),
        ("dora@example.com", "Dora", {"city": "Lima"}),
    ]

    # For scripts: one JSON document on stdout with every rejected row, nothing on stderr.
    as_json = run(engine, "import", "news", str(source), "--json")
    assert as_json.exit_code == 1
    assert as_json.stderr == ""
    document = json.loads(as_json.stdout)
    assert document["list"] == "news"
    assert [row["line"] for row in document["rejected_rows"]] == ["3", "4", "5", "6", "7"]
    assert document["rejected_rows"][2]["why"] == "ada@example.com is already on line 2"
    assert (document["imported"], document["updated"], document["rejected"]) == (0, 2, 5)


def test_a_file_without_an_address_column_is_refused_whole(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("name,mail\nAda,ada@example.com\n", encoding="utf-8")
    for args in (["--create"], ["--create", "--json"]):
        result = run(engine, "import", "news", str(source), *args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr == (
            f"mailroom: error: {source}: the header ('name', 'mail') has no 'email' or "
            "'address' column; the first row must name the columns (e.g. email,name,city); "
            "nothing was imported\n"
        )
    with engine.connect() as connection:
        assert all_lists(connection) == []  # --create made nothing for a refused file

    source.write_text("email,First Name\nada@example.com,Ada\n", encoding="utf-8")
    refused = run(engine, "import", "news", str(source), "--create")
    assert refused.exit_code == 2
    assert "the header's column 'First Name': 'First Name' is not an attribute name" in (
        refused.stderr
    )
    missing = run(engine, "import", "news", str(tmp_path / "nothing.csv"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr


def test_a_clean_import_exits_0_and_again_updates(engine: Engine, tmp_path: Path) -> None:
    assert run(engine, "create", "news", "--description", "Monthly").exit_code == 0
    source = tmp_path / "people.csv"
    source.write_text("Address,plan\nada@example.com,gold\n\nbob@example.com,free\n")
    first = run(engine, "import", "news", str(source))
    assert first.exit_code == 0, first.output
    assert first.stdout == "imported 2, updated 0, rejected 0 (and 1 empty lines skipped)\n"
    assert first.stderr == ""
    again = run(engine, "import", "news", str(source), "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {
        "list": "news",
        "file": str(source),
        "rejected_rows": [],
        "imported": 0,
        "updated": 2,
        "rejected": 0,
        "blank_lines": 1,
    }


def test_import_into_a_list_that_is_not_there_says_how_to_make_it(
    engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email\nada@example.com\n")
    result = run(engine, "import", "news", str(source))
    assert result.exit_code == 1
    assert "there is no mailing list named news" in result.stderr
    assert "mailroom lists create news" in result.stderr
    bad = run(engine, "import", "News!", str(source), "--create")
    assert bad.exit_code == 1
    assert "'News!' is not a list name" in bad.stderr


def test_create_list_show_add_remove_delete(engine: Engine) -> None:
    assert run(engine).stdout == "no mailing lists; make one with: mailroom lists create NAME\n"
    made = run(engine, "create", "news", "--description", "Monthly news")
    assert made.stdout == "created the list news (its unsubscribes: scope list:news)\n"
    assert "already exists" in run(engine, "create", "news").stderr
    assert "Invalid value for 'NAME'" in run(engine, "create", "News").stderr

    added = run(
        engine, "add", "news", "Ada <ADA@example.com>", "--attr", "city=Oslo", "--attr", "n=1"
    )
    assert added.stdout == "added ada@example.com to news\n", added.output
    updated = run(engine, "add", "news", "ada@example.com", "--attr", "city=Bergen")
    assert updated.stdout == "updated ada@example.com in news\n"
    assert contacts_of(engine, "news") == [("ada@example.com", "Ada", {"city": "Bergen", "n": "1"})]
    assert "'first name' is not an attribute name" in (
        run(engine, "add", "news", "bob@example.com", "--attr", "first name=Bob").stderr
    )
    assert "is not KEY=VALUE" in run(engine, "add", "news", "b@x.org", "--attr", "x").stderr
    assert run(engine, "add", "news", "bob@example.com", "--name", "Bob").exit_code == 0

    listed = run(engine)  # alone: the same as `lists list`
    assert listed.stdout.splitlines()[0].split() == [
        "NAME",
        "CONTACTS",
        "CREATED",
        "(UTC)",
        "DESCRIPTION",
    ]
    assert listed.stdout.splitlines()[1].split()[:2] == ["news", "2"]
    as_json = json.loads(run(engine, "list", "--json").stdout)
    assert [(x["name"], x["contacts"], x["scope"]) for x in as_json["lists"]] == [
        ("news", 2, "list:news")
    ]

    shown = run(engine, "show", "news", "--limit", "1")
    assert "list news: 2 contacts, scope list:news" in shown.stdout
    assert "description: Monthly news" in shown.stdout
    assert "ada@example.com" in shown.stdout
    assert "... and 1 more" in shown.stdout
    document = json.loads(run(engine, "show", "news", "--json").stdout)
    assert [c["address"] for c in document["contacts"]] == ["ada@example.com", "bob@example.com"]
    assert document["contacts"][0]["attributes"] == {"city": "Bergen", "n": "1"}

    assert run(engine, "remove", "news", "BOB@example.com").stdout == (
        "removed bob@example.com from news\n"
    )
    assert run(engine, "remove", "news", "bob@example.com").stdout == (
        "bob@example.com is not on news; no change\n"
    )
    unasked = run(engine, "delete", "news")
    assert unasked.exit_code == 1
    assert "this deletes the list news and its 1 contacts" in unasked.stderr
    assert "mailroom lists delete news --yes" in unasked.stderr
    assert run(engine, "delete", "news", "--yes").stdout == (
        "deleted the list news and its 1 contacts\n"
    )
    for args in (["show", "news"], ["delete", "news", "--yes"], ["add", "news", "a@x.org"]):
        gone = run(engine, *args)
        assert gone.exit_code == 1
        assert "there is no mailing list named news" in gone.stderr


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mailroom(
    args: list[str], database_url: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_a_real_process_imports_from_stdin(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    piped = mailroom(["lists", "import", "news", "-", "--create"], url, ACCEPTANCE.encode())
    assert piped.returncode == 1
    assert piped.stdout == b"imported 2, updated 0, rejected 5\n"
    assert piped.stderr.count(b"\n-:") == 5  # "-:3: ...": stdin's rows named by line


def test_a_database_that_cannot_be_reached_is_one_line_naming_database_url() -> None:
    url = f"postgresql://mailroom@127.0.0.1:{closed_port()}/mailroom"
    for args in (["lists"], ["lists", "import", "news", "-"], ["lists", "add", "n", "a@x.org"]):
        result = mailroom(args, url, b"email\nada@example.com\n")
        assert result.returncode == 1, result.stderr
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("mailroom: error: ")
        assert "DATABASE_URL" in lines[0]

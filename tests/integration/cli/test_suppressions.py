"""``mailroom suppressions list|add|remove|import|export`` on a real SQLite file and
PostgreSQL: every change is in the consent log (source ``cli``), every rejected row of an
import is named, and an export imports back as the same list."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine, event, func, select, update

from mailroom.consent import list_suppressions
from mailroom.consent import queries as q
from mailroom.consent.listing import SuppressionEntry
from mailroom.consent.suppression_import import IMPORT_BATCH
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import consent_log, suppressions
from mailroom.outbox.vocabulary import SuppressionReason
from support.cli_database import CLEAN, engine, run_command

__all__ = ["engine"]  # the fixture, used by name


def run(engine: Engine, *args: str) -> Result:
    return run_command(engine, "suppressions", *args)


def entries(engine: Engine) -> list[SuppressionEntry]:
    with engine.connect() as connection:
        return list_suppressions(connection, after=None, limit=1000, search=None, scope=None)


def history(engine: Engine, address: str) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        return [
            (r["action"], r["scope"], r["source"]) for r in q.consent_history(connection, address)
        ]


def test_add_list_remove_with_the_consent_log(engine: Engine) -> None:
    added = run(
        engine, "add", "Ada <ADA@Example.com>", "--note", "asked by phone", "--expires", "+30d"
    )
    assert added.exit_code == 0, added.output
    assert "suppressed ada@example.com for all (manual) until" in added.stdout
    news = run(engine, "add", "ada@example.com", "--scope", "list:news", "--reason", "complaint")
    assert news.exit_code == 0, news.output

    (first, second) = entries(engine)
    assert (first.address, first.scope, first.reason, first.note) == (
        "ada@example.com", "all", SuppressionReason.MANUAL, "asked by phone"
    )  # fmt: skip
    assert first.expires_at is not None
    assert abs(first.expires_at - (time.time() + 30 * 86400)) < 60
    assert (second.scope, second.reason, second.expires_at) == (
        "list:news", SuppressionReason.COMPLAINT, None
    )  # fmt: skip

    listed = run(engine, "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "ADDRESS", "SCOPE", "REASON"]
    assert "asked by phone" in lines[1]
    assert "list:news" in lines[2]

    removed = run(engine, "remove", "ada@example.com")
    assert removed.exit_code == 0, removed.output
    assert "removed ada@example.com from the suppression list for all" in removed.stdout
    assert "still suppressed for: list:news" in removed.stdout
    missing = run(engine, "remove", "ada@example.com")
    assert missing.exit_code == 0
    assert "was not on the suppression list for all" in missing.stdout
    assert [e.scope for e in entries(engine)] == ["list:news"]
    assert history(engine, "ada@example.com") == [
        ("suppressed", "all", "cli"),
        ("suppressed", "list:news", "cli"),
        ("unsuppressed", "all", "cli"),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "ada@example.com", "--scope", "everything"], "Invalid value for '--scope'"),
        (["add", "ada@example.com", "--reason", "dislike"], "Invalid value for '--reason'"),
        (["add", "ada@example.com", "--expires", "soon"], "--expires: 'soon' is not a time"),
        (["add", "ada@example.com", "--expires", "2020-01-01"], "--expires: '2020-01-01' has"),
        (["add", "ada@example.com", "--note", "n" * 1001], "--note: at most 1000"),
        (["add", "not an address"], "address"),
        (["remove", "ada@example.com", "--scope", "x"], "Invalid value for '--scope'"),
        (["list", "--limit", "0"], "Invalid value for '--limit'"),
        (["list", "--after", "-1"], "Invalid value for '--after'"),
    ],
)
def test_bad_input_is_refused_naming_what_to_change(
    engine: Engine, args: list[str], says: str
) -> None:
    result = run(engine, *args)
    assert result.exit_code in {1, 2}
    assert says in result.stderr
    assert entries(engine) == []


def test_list_pages_by_id_and_filters(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "many.csv"
    rows = [f"user{n:02}@example.com" for n in range(7)]
    rows += ["ops@other.example,list:news", "ada@example.com,type:task.assigned"]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert run(engine, "import", str(source)).exit_code == 0

    first = run(engine, "list", "--limit", "4")
    shown = [line.split()[1] for line in first.stdout.splitlines()[1:5]]
    assert shown == rows[:4]
    assert "more: mailroom suppressions list --after 4 --limit 4" in first.stdout
    page = json.loads(run(engine, "list", "--limit", "4", "--after", "4", "--json").stdout)
    assert [e["address"] for e in page["suppressions"]] == [*rows[4:7], "ops@other.example"]
    assert page["next_after"] == 8
    last = json.loads(run(engine, "list", "--limit", "4", "--after", "8", "--json").stdout)
    assert [e["address"] for e in last["suppressions"]] == ["ada@example.com"]
    assert last["next_after"] is None

    searched = json.loads(run(engine, "list", "--search", "OTHER.", "--json").stdout)
    assert [e["address"] for e in searched["suppressions"]] == ["ops@other.example"]
    # LIKE wildcards in a search are plain characters.
    assert json.loads(run(engine, "list", "--search", "%", "--json").stdout)["suppressions"] == []
    assert (
        json.loads(run(engine, "list", "--search", "user_", "--json").stdout)["suppressions"] == []
    )
    scoped = json.loads(run(engine, "list", "--scope", "type:task.assigned", "--json").stdout)
    assert [e["address"] for e in scoped["suppressions"]] == ["ada@example.com"]


def test_import_reports_every_rejected_row_and_keeps_the_others(
    engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "list.csv"
    source.write_text(
        "\ufeffaddress,scope,reason,expires_at,note\n"
        "ok1@example.com,,,,\n"
        "broken-address,,,,\n"
        'ok2@example.com,list:news,hard_bounce,2030-01-01,"moved from, the old ESP"\n'
        "bad-scope@example.com,everyone,,,\n"
        "bad-reason@example.com,all,dislike,,\n"
        "bad-time@example.com,all,manual,someday,\n" + "x" * 10_000 + "\n"
        "ok3@example.com\n",
        encoding="utf-8",
    )
    result = run(engine, "import", str(source))
    assert result.exit_code == 1
    assert "imported 3 entries; rejected 5 rows" in result.stdout
    report = result.stderr.splitlines()
    named = [line for line in report if line.startswith(f"{source}:")]
    assert [line.split(":")[1] for line in named] == ["3", "5", "6", "7", "8"]
    assert "'broken-address': address" in named[0]
    assert "scope: 'everyone'" in named[1]
    assert "reason: 'dislike'" in named[2]
    assert "expires_at: 'someday' is not a time" in named[3]
    assert "a line over 8192 characters" in named[4]
    assert "5 rows of" in report[-1]
    assert [e.address for e in entries(engine)] == [
        "ok1@example.com", "ok2@example.com", "ok3@example.com"
    ]  # fmt: skip
    assert entries(engine)[1].note == "moved from, the old ESP"
    assert history(engine, "ok2@example.com") == [("suppressed", "list:news", "cli")]


def test_a_first_row_with_an_unknown_column_is_no_header_and_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "list.csv"
    source.write_text("address,colour\nada@example.com,red\n", encoding="utf-8")
    result = run(engine, "import", str(source))
    assert result.exit_code == 1
    assert "imported 0 entries; rejected 2 rows" in result.stdout
    assert "'colour' is not a column" in result.stderr
    assert entries(engine) == []


def test_a_column_named_twice_imports_nothing(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text("address,note,note\nada@example.com,a,b\n", encoding="utf-8")
    result = run(engine, "import", str(source))
    assert result.exit_code == 1
    assert "a column named twice" in result.stderr
    assert "nothing was imported" in result.stderr
    assert entries(engine) == []


def test_a_first_row_with_a_note_saying_address_is_an_entry(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text("ada@example.com,all,manual,,address\n", encoding="utf-8")
    result = run(engine, "import", str(source))
    assert result.exit_code == 0, result.output
    assert [(e.address, e.note) for e in entries(engine)] == [("ada@example.com", "address")]


def test_export_writes_no_cell_a_spreadsheet_runs_and_imports_back_the_same(
    engine: Engine, tmp_path: Path
) -> None:
    assert run(engine, "add", "--", "=cmd|'/Ccalc.exe'!A0@example.com").exit_code == 0
    assert run(engine, "add", "--note", "=HYPERLINK(1)", "--", "-dash@example.com").exit_code == 0
    assert run(engine, "add", "plus@example.com", "--note", "'@already quoted").exit_code == 0
    assert run(engine, "add", "tab@example.com", "--note", "\tindented").exit_code == 0
    target = tmp_path / "export.csv"
    assert run(engine, "export", str(target)).exit_code == 0
    with target.open(encoding="utf-8", newline="") as file:
        cells = [cell for row in csv.reader(file) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK(1)" in cells
    assert "''@already quoted" in cells

    other = create_outbox_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        database.upgrade(other)
        imported = run(other, "import", str(target))
        assert imported.exit_code == 0, imported.output

        def shape(engine: Engine) -> list[tuple[object, ...]]:
            return [(e.address, e.note) for e in entries(engine)]

        assert shape(other) == shape(engine)
        assert ("-dash@example.com", "=HYPERLINK(1)") in shape(other)
        assert ("plus@example.com", "'@already quoted") in shape(other)
    finally:
        other.dispose()


def test_a_large_import_commits_in_batches(engine: Engine, tmp_path: Path) -> None:
    rows = tmp_path / "list.csv"
    count = IMPORT_BATCH * 2 + 500
    lines = [f"user{i}@example.com\n" for i in range(count)]
    lines[IMPORT_BATCH + 7] = "not-an-address\n"  # reported, the rest of its batch kept
    rows.write_text("".join(lines), encoding="utf-8")
    commits: list[object] = []

    def counted(connection: object) -> None:
        commits.append(connection)

    event.listen(Engine, "commit", counted)  # every engine: the command makes its own
    try:
        result = run(engine, "import", str(rows))
    finally:
        event.remove(Engine, "commit", counted)
    assert result.exit_code == 1
    assert f"imported {count - 1} entries; rejected 1 rows" in result.stdout
    assert f"{rows}:{IMPORT_BATCH + 8}: 'not-an-address'" in result.stderr
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(suppressions)).scalar()
        logged = connection.execute(select(func.count()).select_from(consent_log)).scalar()
    assert stored == logged == count - 1
    assert 3 <= len(commits) <= 6  # three batches, and the schema check's own


def test_a_row_the_database_refuses_is_reported_and_its_batch_kept(
    engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores a NUL in a text; PostgreSQL refuses it")
    rows = tmp_path / "list.csv"
    rows.write_text("a@example.com\nb@example.com,,,,nul\x00here\nc@example.com\n")
    result = run(engine, "import", str(rows))
    assert result.exit_code == 1
    assert "imported 2 entries; rejected 1 rows" in result.stdout
    assert f"{rows}:2: 'b@example.com': the database refused it" in result.stderr
    assert [e.address for e in entries(engine)] == ["a@example.com", "c@example.com"]


@pytest.mark.parametrize(
    "expiry", ["+999999w", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00"]
)
def test_an_expiry_no_date_can_show_is_refused_naming_the_option(
    engine: Engine, expiry: str
) -> None:
    added = run(engine, "add", "late@example.com", "--expires", expiry)
    assert added.exit_code != 0
    assert "--expires" in added.output
    assert "out of range" in added.output
    assert entries(engine) == []


def test_an_import_row_with_an_out_of_range_expiry_is_rejected(
    engine: Engine, tmp_path: Path
) -> None:
    rows = tmp_path / "list.csv"
    rows.write_text(
        "address,expires_at\nok@example.com,\nold@example.com,0001-01-01T00:00:00+01:00\n",
        encoding="utf-8",
    )
    result = run(engine, "import", str(rows))
    assert result.exit_code == 1
    assert f"{rows}:3: 'old@example.com': expires_at:" in result.stderr
    assert [e.address for e in entries(engine)] == ["ok@example.com"]


def test_list_and_export_show_a_stored_time_no_date_can_show_as_it_is(
    engine: Engine, tmp_path: Path
) -> None:
    far = 1e13  # stored by an older version that accepted +999999w
    assert run(engine, "add", "late@example.com").exit_code == 0
    with engine.begin() as connection:
        connection.execute(update(suppressions).values(expires_at=far))
    listed = run(engine, "list")
    assert listed.exit_code == 0, listed.output
    assert repr(far) in listed.stdout
    exported = run(engine, "export")
    assert exported.exit_code == 0, exported.output
    assert f"late@example.com,all,manual,{far!r}," in exported.stdout
    # Read back, the row is reported, not stored with some other time.
    target = tmp_path / "export.csv"
    target.write_text(exported.stdout, encoding="utf-8")
    assert "expires_at:" in run(engine, "import", str(target)).stderr


def test_export_then_import_elsewhere_is_the_same_list(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    for args in (
        ["add", "ada@example.com", "--note", 'said "stop",\nby phone', "--expires", "2031-05-01"],
        ["add", "bob@example.com", "--scope", "type:task.assigned", "--reason", "unsubscribed"],
        ["add", "zoë@exämple.com", "--scope", "list:news", "--reason", "hard_bounce"],
    ):
        assert run(engine, *args).exit_code == 0
    target = tmp_path / "export.csv"
    exported = run(engine, "export", str(target))
    assert exported.exit_code == 0, exported.output
    assert f"exported 3 entries to {target}" in exported.stderr

    # The same rows on stdout, from a real process (its stdout is the CSV and nothing else).
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    piped = subprocess.run(
        [sys.executable, "-m", "mailroom", "suppressions", "export"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == target.read_bytes()

    fresh = tmp_path / "fresh.db"
    other = create_outbox_engine(f"sqlite:///{fresh}")
    try:
        database.upgrade(other)
        imported = run(other, "import", str(target))
        assert imported.exit_code == 0, imported.output
        assert "imported 3 entries; rejected 0 rows" in imported.stdout

        def shape(engine: Engine) -> list[tuple[object, ...]]:
            return [(e.address, e.scope, e.reason, e.expires_at, e.note) for e in entries(engine)]

        assert shape(other) == shape(engine)
        assert shape(other)[0][4] == 'said "stop",\nby phone'
    finally:
        other.dispose()

"""Reading a suppression CSV: each row checked, every rejected row named with its line and
why, lines read with a bound; the expiry forms people type; export rows read back the same."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from mailroom.cli.suppression_csv import (
    MAX_LINE,
    CsvHeaderError,
    ImportRow,
    Rejected,
    export_header,
    export_row,
    parse_expiry,
    read_rows,
)
from mailroom.consent.listing import SuppressionEntry
from mailroom.errors import MessageError
from mailroom.outbox.vocabulary import SuppressionReason

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def read(text: str) -> list[ImportRow | Rejected]:
    return list(read_rows(io.StringIO(text, newline=""), NOW))


def test_rows_with_defaults_and_without_a_header() -> None:
    rows = read(
        "Ada <ADA@Example.com>\nbob@example.com,list:news,hard_bounce,+30d,from the old ESP\n"
    )
    assert rows == [
        ImportRow(1, "ada@example.com", "all", SuppressionReason.MANUAL, None, None),
        ImportRow(
            2,
            "bob@example.com",
            "list:news",
            SuppressionReason.HARD_BOUNCE,
            NOW + 30 * 86400,
            "from the old ESP",
        ),
    ]


def test_a_header_may_reorder_columns_and_created_at_is_ignored() -> None:
    rows = read("note,Address,created_at\nhello,ada@example.com,2020-01-01T00:00:00Z\n")
    assert rows == [ImportRow(2, "ada@example.com", "all", SuppressionReason.MANUAL, None, "hello")]


def test_an_unknown_header_column_stops_the_import_before_any_row() -> None:
    with pytest.raises(CsvHeaderError, match="'colour'"):
        read("address,colour\nada@example.com,red\n")


def test_every_bad_row_is_named_with_its_line_and_why() -> None:
    text = (
        "address,scope,reason,expires_at,note\n"
        "not-an-address\n"
        "ok@example.com\n"
        "a@example.com,weird\n"
        "b@example.com,all,nope\n"
        "c@example.com,all,manual,tomorrow\n"
        "d@example.com,all,manual,,note,extra\n"
        ",all\n"
        "e@example.com,all,manual,," + "n" * 1001 + "\n"
        "f\udcffx@example.com\n"
    )
    rows = read(text)
    rejected = {row.line: row.why for row in rows if isinstance(row, Rejected)}
    assert [row.address for row in rows if isinstance(row, ImportRow)] == ["ok@example.com"]
    assert sorted(rejected, key=int) == ["2", "4", "5", "6", "7", "8", "9", "10"]
    assert "address" in rejected["2"]
    assert "scope" in rejected["4"]
    assert "reason: 'nope' is not one of unsubscribed, hard_bounce" in rejected["5"]
    assert "expires_at" in rejected["6"]
    assert "6 cells, but only 5 columns" in rejected["7"]
    assert "address: empty" in rejected["8"]
    assert "note: at most 1000 characters" in rejected["9"]
    assert "UTF-8" in rejected["10"]


def test_an_overlong_line_is_reported_and_skipped_and_the_next_rows_still_read() -> None:
    text = "a@example.com\n" + "x" * (3 * MAX_LINE) + "\nb@example.com\n"
    rows = read(text)
    assert rows[0] == ImportRow(1, "a@example.com", "all", SuppressionReason.MANUAL, None, None)
    assert rows[1] == Rejected("2", f"a line over {MAX_LINE} characters")
    assert rows[2] == ImportRow(3, "b@example.com", "all", SuppressionReason.MANUAL, None, None)


def test_a_quoted_note_may_span_lines_and_blank_lines_are_no_rows() -> None:
    rows = read('\n\na@example.com,,,,"two\nlines"\n\n')
    assert rows == [
        ImportRow(3, "a@example.com", "all", SuppressionReason.MANUAL, None, "two\nlines")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("  ", None),
        ("+90m", NOW + 90 * 60),
        ("+12h", NOW + 12 * 3600),
        ("+30d", NOW + 30 * 86400),
        ("+2w", NOW + 14 * 86400),
        ("2026-12-31", datetime(2026, 12, 31, tzinfo=UTC).timestamp()),
        ("2026-12-31T18:00:00Z", datetime(2026, 12, 31, 18, tzinfo=UTC).timestamp()),
        ("2026-12-31T18:00", datetime(2026, 12, 31, 18, tzinfo=UTC).timestamp()),
        ("2026-12-31T20:00:00+02:00", datetime(2026, 12, 31, 18, tzinfo=UTC).timestamp()),
    ],
)
def test_expiry_forms(text: str, expected: float | None) -> None:
    assert parse_expiry(text, NOW, field="--expires") == expected


@pytest.mark.parametrize("text", ["tomorrow", "30d", "+30y", "+-1d", "2026-13-01", "12/31/2026"])
def test_expiry_refused_naming_the_field(text: str) -> None:
    with pytest.raises(MessageError, match=r"^--expires: .*is not a time"):
        parse_expiry(text, NOW, field="--expires")


def test_a_past_expiry_is_refused_only_when_asked() -> None:
    assert parse_expiry("2020-01-01", NOW, field="expires_at") is not None
    with pytest.raises(MessageError, match="already passed"):
        parse_expiry("2020-01-01", NOW, field="--expires", future_only=True)


def test_an_exported_row_reads_back_as_the_same_entry() -> None:
    entry = SuppressionEntry(
        7,
        "ada@example.com",
        "type:task.assigned",
        SuppressionReason.COMPLAINT,
        NOW - 100,
        datetime(2027, 1, 1, 6, tzinfo=UTC).timestamp(),
        'said "stop",\nby phone',
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(export_header())
    writer.writerow(export_row(entry))
    (row,) = read(out.getvalue())
    assert row == ImportRow(
        2, entry.address, entry.scope, entry.reason, entry.expires_at, entry.note
    )

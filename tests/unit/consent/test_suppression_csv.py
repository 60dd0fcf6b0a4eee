"""Reading a suppression CSV: each row checked, every rejected row named with its line and
why, lines read with a bound; the expiry forms people type; export rows read back the same."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from mailroom.consent.listing import SuppressionEntry
from mailroom.consent.suppression_csv import (
    LATEST,
    MAX_LINE,
    CsvHeaderError,
    ImportRow,
    Rejected,
    export_header,
    export_row,
    export_writer,
    iso_time,
    parse_expiry,
    read_rows,
)
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


def test_a_column_named_twice_stops_the_import_before_any_row() -> None:
    with pytest.raises(CsvHeaderError, match="a column named twice"):
        read("address,note,Note\nada@example.com,a,b\n")


def test_a_first_row_is_a_header_only_if_every_cell_is_a_column_name() -> None:
    rows = read("ada@example.com,all,manual,,address\naddress,colour\n")
    assert rows[0] == ImportRow(
        1, "ada@example.com", "all", SuppressionReason.MANUAL, None, "address"
    )
    assert isinstance(rows[1], Rejected)  # the second row is never a header
    assert "if this is a header" not in rows[1].why


def test_a_first_row_naming_an_unknown_column_is_rejected_saying_which() -> None:
    rows = read("address,colour\nada@example.com\n")
    assert isinstance(rows[0], Rejected)
    assert "'colour' is not a column" in rows[0].why
    assert rows[1] == ImportRow(2, "ada@example.com", "all", SuppressionReason.MANUAL, None, None)


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
    writer = export_writer(out)
    writer.writerow(export_header())
    writer.writerow(export_row(entry))
    (row,) = read(out.getvalue())
    assert row == ImportRow(
        2, entry.address, entry.scope, entry.reason, entry.expires_at, entry.note
    )


@pytest.mark.parametrize(
    "text",
    [
        "+999999w",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01",
        "1969-12-31T23:59:59Z",
    ],
)
def test_an_expiry_no_date_can_show_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(MessageError, match=r"^expires_at: .*is out of range"):
        parse_expiry(text, NOW, field="expires_at")


def test_the_last_second_a_date_can_show_is_accepted() -> None:
    assert parse_expiry("9999-12-31T23:59:59Z", NOW, field="expires_at") == LATEST.timestamp()
    assert parse_expiry("+5200w", NOW, field="expires_at") == NOW + 5200 * 7 * 86400


def test_a_stored_time_no_date_can_show_is_exported_as_the_raw_number() -> None:
    assert iso_time(1e13) == "10000000000000.0"
    assert iso_time(-1e13) == "-10000000000000.0"
    assert iso_time(0.0) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=x", "''-x", "'", "'plain", "plain", ""],
)
def test_a_cell_a_spreadsheet_would_run_is_exported_quoted_and_read_back_the_same(
    text: str,
) -> None:
    entry = SuppressionEntry(
        1, "ada@example.com", "all", SuppressionReason.MANUAL, NOW, None, text or None
    )
    row = export_row(entry)
    assert row[4][:1] not in ("=", "+", "-", "@", "\t", "\r")
    runs = text.lstrip("'")[:1] in ("=", "+", "-", "@", "\t", "\r")
    assert row[4] == (f"'{text}" if runs else text)
    out = io.StringIO()
    writer = export_writer(out)
    writer.writerow(export_header())
    writer.writerow(row)
    (back,) = read(out.getvalue())
    assert isinstance(back, ImportRow)
    assert back.note == (text or None)

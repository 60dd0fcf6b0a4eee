"""Rows as people read them, whatever shows them: durations, times, clipping, JSON (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailroom.message import Attachment, Message, build_envelope
from mailroom.outbox.operator_queries import AttemptRow, MessageDetail, MessageRow
from mailroom.outbox.presentation import (
    COMMON_HEADERS,
    LIST_COLUMNS,
    clip,
    consent_summary,
    detail_json,
    list_cells,
    message_headers,
    message_parts,
    parse_duration,
    recipients_cell,
    row_json,
    utc_time,
)
from mailroom.outbox.vocabulary import Status


def shown(text: str) -> str:
    """A stand-in for a medium's escaping: every control character as ``<XX>``."""
    return "".join(f"<{ord(c):02x}>" if ord(c) < 0x20 else c for c in text)


ROW = MessageRow(
    id=7,
    status=Status.DEFERRED,
    stream="transactional",
    subject="Your receipt",
    recipients=("ada@example.com", "bob@example.com", "cy@example.com"),
    attempts=2,
    created_at=0.0,
    due_at=86_400.0,
    last_error=None,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800.0), ("2h", 7200.0), ("7d", 604_800.0), ("1d12h", 129_600.0), (" 1.5S ", 1.5)],
)
def test_durations_as_operators_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "m", "2 h", "1y", "-1d"])
def test_a_duration_without_a_unit_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="30m, 2h, 7d"):
        parse_duration(text)


def test_times_are_utc_and_none_is_a_dash() -> None:
    assert utc_time(0.0) == "1970-01-01 00:00:00"
    assert utc_time(None) == "-"


def test_clip_keeps_one_line_and_marks_a_cut() -> None:
    assert clip("a\n b\t c", 10) == "a b c"
    assert clip(None, 10) == ""
    assert clip("abcdefghij", 5) == "abcd…"
    assert clip("abcde", 5) == "abcde"


def test_clip_counts_what_is_shown_and_never_cuts_an_escape() -> None:
    assert clip("ab\x1bc", 10, shown) == "ab<1b>c"
    # "ab<1b>" is 6 characters shown: with room for 5 before the "…", the escape goes whole.
    assert clip("ab\x1bcdef", 6, shown) == "ab…"


def test_the_recipients_cell_is_the_first_and_how_many_more() -> None:
    assert recipients_cell(ROW.recipients) == "ada@example.com +2"
    assert recipients_cell(("ada@example.com",)) == "ada@example.com"
    assert recipients_cell(()) == ""
    assert recipients_cell(("a" * 40 + "@example.com",)) == "a" * 31 + "…"


def test_a_listed_row_has_a_cell_per_column_and_json_values() -> None:
    cells = list_cells(ROW)
    assert len(cells) == len(LIST_COLUMNS)
    assert cells[:6] == ("7", "deferred", "transactional", "2", utc_time(0.0), utc_time(86_400.0))
    assert cells[6:] == ("ada@example.com +2", "Your receipt", "")
    as_json = row_json(ROW)
    assert json.loads(json.dumps(as_json)) == as_json
    assert as_json["status"] == "deferred"
    assert as_json["recipients"] == list(ROW.recipients)


def test_a_message_as_json_has_its_headers_and_send_log_not_its_bytes() -> None:
    data = b"From: Shop <shop@example.com>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nhello\r\n"
    assert message_headers(data) == [("From", "Shop <shop@example.com>"), ("Subject", "Café")]
    detail = MessageDetail(
        id=7,
        message_id="<m@example.com>",
        status=Status.SENT,
        stream="transactional",
        priority=0,
        sender="shop@example.com",
        recipients=("ada@example.com",),
        subject="Café",
        attempts=1,
        created_at=0.0,
        due_at=0.0,
        updated_at=1.0,
        sent_at=1.0,
        last_error=None,
        last_code=None,
        last_enhanced_status=None,
        idempotency_key=None,
        extra=None,
        consent_scopes=["all", "type:order.shipped"],
        consent_required=False,
        smtputf8=False,
        data=data,
    )
    attempt = AttemptRow(
        id=1,
        attempt=1,
        at=1.0,
        duration_ms=40.0,
        recipient="ada@example.com",
        transport="smtp",
        outcome="sent",
        code=250,
        enhanced_status="2.0.0",
        server_text="ok",
        possible_duplicate=False,
        worker="w1",
    )
    as_json = detail_json(detail, [attempt])
    assert json.loads(json.dumps(as_json)) == as_json
    assert "data" not in as_json
    assert as_json["size"] == len(data)
    assert as_json["status"] == "sent"
    assert list(as_json["headers"]) == list(COMMON_HEADERS)  # present or not, in this order
    assert as_json["headers"]["To"] is None
    assert as_json["headers"]["Subject"] == "Café"
    assert as_json["header_fields"] == [["From", "Shop <shop@example.com>"], ["Subject", "Café"]]
    assert as_json["attempts_log"][0]["code"] == 250


@pytest.mark.parametrize(
    ("scopes", "required", "summary"),
    [
        (
            None,
            None,
            "plain send: checked against scope all, as mail the recipient may not turn off",
        ),
        (
            ["all", "type:task.assigned"],
            False,
            "scopes all, type:task.assigned; the recipient may opt out",
        ),
        (
            ["all", "type:account.reset"],
            True,
            "scopes all, type:account.reset; the recipient may not turn it off",
        ),
    ],
)
def test_the_consent_facts_are_said_in_words(
    scopes: list[str] | None, required: bool | None, summary: str
) -> None:
    fields: dict[str, Any] = dict.fromkeys(MessageDetail.__dataclass_fields__)
    detail = MessageDetail(**{**fields, "consent_scopes": scopes, "consent_required": required})
    assert consent_summary(detail) == summary


def test_message_parts_finds_both_bodies_and_lists_every_file() -> None:
    envelope = build_envelope(
        Message(
            to=["a@example.com"],
            subject="Parts",
            text="plain words",
            html='<p>html words <img src="cid:logo"></p>',
            attachments=[
                Attachment("report.pdf", b"%PDF-1", "application/pdf"),
                Attachment("logo.png", b"\x89PNG", "image/png", content_id="logo"),
                Attachment("notes.txt", b"a text file", "text/plain"),
            ],
        ),
        default_from="b@example.com",
        max_size=10**6,
    )
    parts = message_parts(envelope.data)
    assert parts.text is not None
    assert parts.text.strip() == "plain words"
    assert parts.html is not None
    assert "html words" in parts.html
    files = {f.filename: (f.content_type, f.size) for f in parts.attachments}
    assert files == {
        "report.pdf": ("application/pdf", 6),
        "logo.png": ("image/png", 4),
        "notes.txt": ("text/plain", 11),
    }
    assert [f.inline for f in parts.attachments if f.filename == "logo.png"] == [True]

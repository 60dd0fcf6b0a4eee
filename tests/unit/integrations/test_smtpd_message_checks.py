"""What the submission port takes of a message's bytes, and what it adds."""

from __future__ import annotations

import pytest

from mailroom.integrations.smtpd.message_checks import Refused, check_message

HEADER = b"From: Ada <ada@example.com>\r\nTo: bob@example.com\r\nSubject: Hi\r\n"
COMPLETE = HEADER + b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a@example.com>\r\n"


def check(data: bytes, max_size: int = 10_000) -> bytes:
    return check_message(data, sender_domain="example.com", max_size=max_size).data


def test_a_complete_message_is_kept_byte_for_byte() -> None:
    data = COMPLETE + b"\r\nBody\r\n"
    checked = check_message(data, sender_domain="example.com", max_size=10_000)
    assert checked.data is data
    assert checked.message_id == "<a@example.com>"
    assert checked.subject == "Hi"
    assert checked.utf8_headers is False


def test_date_and_message_id_are_put_first_when_missing() -> None:
    data = HEADER + b"\r\nBody\r\n"
    checked = check_message(data, sender_domain="example.com", max_size=10_000)
    added, _, rest = checked.data.partition(HEADER)
    assert rest == b"\r\nBody\r\n"
    date, message_id, end = added.split(b"\r\n")
    assert date.startswith(b"Date: ")
    assert end == b""
    assert message_id == f"Message-ID: {checked.message_id}".encode()
    assert checked.message_id.endswith("@example.com>")


def test_a_folded_subject_is_unfolded_and_encoded_words_decoded_for_listings() -> None:
    data = COMPLETE.replace(b"Subject: Hi", b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n aus Wien")
    checked = check_message(data + b"\r\nx\r\n", sender_domain="example.com", max_size=10_000)
    assert checked.subject == "Grüße aus Wien"


def test_raw_utf8_in_the_header_asks_for_smtputf8() -> None:
    data = COMPLETE.replace(b"Subject: Hi", "Subject: Grüße".encode())
    assert check_message(data, sender_domain="example.com", max_size=10_000).utf8_headers


def test_a_message_without_a_body_is_all_header() -> None:
    assert check(COMPLETE) == COMPLETE


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (COMPLETE + b"\r\nbare\nLF\r\n", "550 5.6.0 The message has a bare CR or LF"),
        (COMPLETE + b"\r\nbare\rCR\r\n", "550 5.6.0 The message has a bare CR or LF"),
        (COMPLETE.replace(b"Hi", b"H\x00i") + b"\r\nx\r\n", "550 5.6.0 The message has a NUL"),
        (b"To: bob@example.com\r\n\r\nBody\r\n", "550 5.6.0 The message has no From"),
        (b" folded\r\n" + COMPLETE, "550 5.6.0 The message starts with a folded line"),
        (COMPLETE + b"Just text\r\n\r\nBody\r\n", "550 5.6.0 Header line 6 is not"),
        (COMPLETE + b": no name\r\n", "550 5.6.0 Header line 6 is not"),
        (COMPLETE + b"Bad Name: x\r\n", "550 5.6.0 Header line 6 is not"),
        (COMPLETE + b"FROM: again@example.com\r\n", "550 5.6.0 The message has more than one FROM"),
        (COMPLETE + b"date: again\r\n", "more than one date field"),
    ],
)
def test_what_is_refused_and_why(data: bytes, says: str) -> None:
    with pytest.raises(Refused) as refused:
        check(data)
    assert refused.value.reply.startswith("550 5.6.0")
    assert says in refused.value.reply


def test_the_size_limit_counts_the_fields_added() -> None:
    data = HEADER + b"\r\n" + b"x" * 100 + b"\r\n"
    assert check(data, max_size=len(data) + 200)
    with pytest.raises(Refused) as refused:
        check(data, max_size=len(data) + 10)
    assert refused.value.reply.startswith("552 5.3.4")


def test_a_header_after_the_body_starts_is_body() -> None:
    data = COMPLETE + b"\r\nFrom: not a header here\r\nDate: nor this\r\n"
    assert check(data) is data


def test_the_trace_field_goes_first_and_counts_in_the_size() -> None:
    trace = (
        b"Received: from a (unknown [192.0.2.1])\r\n\tby b (Mailroom) with ESMTP id X;\r\n\td\r\n"
    )
    data = COMPLETE + b"\r\nBody\r\n"
    checked = check_message(data, sender_domain="example.com", max_size=10_000, trace=trace)
    assert checked.data == trace + data
    bare = HEADER + b"\r\nBody\r\n"
    added = check_message(bare, sender_domain="example.com", max_size=10_000, trace=trace).data
    assert added.startswith(trace + b"Date: ")
    assert added.endswith(bare)
    with pytest.raises(Refused) as refused:
        check_message(data, sender_domain="example.com", max_size=len(data) + 10, trace=trace)
    assert refused.value.reply.startswith("552 5.3.4")

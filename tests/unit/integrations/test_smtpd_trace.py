"""The Received field the submission port writes: its clauses, the protocol's name, what a
client's name may put in it, and its folding."""

from __future__ import annotations

import re

import pytest

from mailroom.integrations.smtpd.trace import queue_id, received_field

DATE = b"Mon, 07 Dec 2026 10:00:00 +0000"


def field(**given: object) -> bytes:
    options: dict[str, object] = {
        "helo": "app.example.com",
        "host": "192.0.2.7",
        "hostname": "mx.example.com",
        "extended": True,
        "tls": True,
        "authenticated": True,
        "smtputf8": False,
        "queue": "0123456789ABCDEF",
        "date": DATE,
        **given,
    }
    return received_field(**options)  # type: ignore[arg-type]


def test_the_field_as_postfix_writes_it_folded_before_by_and_the_date() -> None:
    assert field() == (
        b"Received: from app.example.com (unknown [192.0.2.7])\r\n"
        b"\tby mx.example.com (Mailroom) with ESMTPSA id 0123456789ABCDEF;\r\n"
        b"\tMon, 07 Dec 2026 10:00:00 +0000\r\n"
    )


@pytest.mark.parametrize(
    ("extended", "tls", "authenticated", "smtputf8", "protocol"),
    [
        (True, False, False, False, b"ESMTP"),
        (True, True, False, False, b"ESMTPS"),
        (True, False, True, False, b"ESMTPA"),
        (True, True, True, False, b"ESMTPSA"),
        (True, False, False, True, b"UTF8SMTP"),
        (True, True, True, True, b"UTF8SMTPSA"),
        (False, False, False, False, b"SMTP"),
    ],
)
def test_the_protocol_in_rfc_3848_and_rfc_6531_words(
    extended: bool, tls: bool, authenticated: bool, smtputf8: bool, protocol: bytes
) -> None:
    written = field(extended=extended, tls=tls, authenticated=authenticated, smtputf8=smtputf8)
    assert b" with " + protocol + b" id " in written


def test_ipv6_and_no_address() -> None:
    assert b"(unknown [IPv6:2001:db8::1])" in field(host="2001:db8::1")
    assert b"(unknown [192.0.2.7])" in field(host="::ffff:192.0.2.7")
    assert b"from app.example.com (unknown)\r\n" in field(host="")


def test_a_clients_name_cannot_break_out_of_its_clause() -> None:
    written = field(helo="evil(x)\rX-Injected: 1; caf\u00e9 \udcff" + "a" * 400)
    first = written.split(b"\r\n")[0]
    assert first.startswith(b"Received: from evil?x??X-Injected:?1??caf???a")
    assert len(first) < 998
    assert first.count(b"a" * 200) == 1
    assert len(first) == len(b"Received: from ") + 255 + len(b" (unknown [192.0.2.7])")
    assert written.count(b"\r\n") == 3
    assert written.isascii()
    assert b"from unknown (" in field(helo=None)


def test_every_line_is_short_and_folded_with_whitespace() -> None:
    written = field(helo="h" * 1000, hostname="m" * 1000, host="2001:db8::ffff:ffff:ffff:ffff")
    lines = written.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) < 998 for line in lines)
    assert all(line[:1] == b"\t" for line in lines[1:-1])


def test_queue_ids_are_new_each_time() -> None:
    ids = {queue_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9A-F]{16}", one) for one in ids)

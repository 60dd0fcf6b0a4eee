"""``printable``: what may act on a terminal is shown, everything else passes untouched."""

from __future__ import annotations

import logging

import pytest

from mailroom.cli.render import PrintableFormatter, database_shown, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("a\x00b\x7fc", "a\\x00b\\x7fc"),
        ("\x9b31m", "\\x9b31m"),  # a one-character CSI (C1)
        ("\x85", "\\x85"),  # NEL
        ("\u202egpj.exe", "\\u202egpj.exe"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("a\u2028b", "a\\u2028b"),
        ("one\ntwo\tthree\r", "one\\ntwo\\tthree\\r"),
        ("caf\udce9", "caf\\xe9"),  # a non-UTF-8 byte carried by surrogateescape
    ],
)
def test_controls_become_visible(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@pytest.mark.parametrize("text", ["plain", "Zoë <zoe@exämple.com>", "日本語", "emoji 📬", "a\\x1b"])
def test_ordinary_text_is_untouched(text: str) -> None:
    assert printable(text) == text


def test_keep_newlines_keeps_lines_and_tabs_but_not_cr() -> None:
    assert printable("a\n\tb\r\n\x1b", keep_newlines=True) == "a\n\tb\\r\n\\x1b"


def test_not_a_string_is_made_one() -> None:
    assert printable(550) == "550"


def test_the_log_formatter_escapes_messages_and_arguments() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "reply %s", ("\x1b[2J",), None)
    assert PrintableFormatter("%(message)s").format(record) == "reply \\x1b[2J"


def test_the_database_is_shown_without_its_password_and_printable() -> None:
    shown = database_shown("postgresql://owner:s3cret-pw@db.example:5432/mail\x1b[2J")
    assert "s3cret-pw" not in shown
    assert "owner" in shown
    assert "db.example" in shown
    assert "\x1b" not in shown

"""Text from messages, relays and the database made safe to print on an operator's terminal.

A subject, a recipient or a relay's reply is data someone else wrote. Printed raw, an ESC
(``\\x1b[2J`` clears the screen, ``\\x1b]0;...\\x07`` retitles the window, ``\\x1b]52;...``
writes the clipboard on some terminals), a C1 control (U+009B is a one-byte CSI) or a
bidirectional override (U+202E makes ``gpj.exe`` read ``exe.jpg``) acts on the terminal
instead of being shown. :func:`printable` shows each such character as a visible escape
(``\\x1b``, ``\\u202e``) so the operator sees exactly what is stored and nothing acts on them.

Every command that prints data it did not write itself passes it through here; JSON output
needs nothing more (``json.dumps`` escapes control characters itself).
"""

from __future__ import annotations

import logging
import re

from mailroom.errors import MailroomError
from mailroom.outbox.database_url import display_url

__all__ = ["PrintableFormatter", "database_shown", "printable"]

# C0 controls and DEL; C1 controls (U+0080-U+009F); the bidirectional marks, embeddings,
# overrides and isolates (Unicode UAX #9: U+061C, U+200E-U+200F, U+202A-U+202E,
# U+2066-U+2069); the line and paragraph separators (U+2028, U+2029), which some terminals and
# viewers break lines at; and lone surrogates, which are how Python carries bytes that were
# not valid UTF-8 (surrogateescape) and which cannot be written to a UTF-8 terminal at all.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ud800-\udfff]"
)
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069"
    "\ud800-\udfff]"
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, carried by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` (made a string) with every control, bidi and separator character escaped.

    With ``keep_newlines``, LF and TAB stay as they are (for multi-line output such as a raw
    message or a traceback); a CR is still shown as ``\\r``: alone it moves the cursor to the
    start of the line, where the next text would overwrite what was printed.
    """
    string = text if isinstance(text, str) else str(text)
    pattern = _UNSAFE_KEEPING_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, string)


class PrintableFormatter(logging.Formatter):
    """A log formatter for the terminal: a relay's reply in a log line cannot act on it."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


def database_shown(url: str) -> str:
    """``DATABASE_URL`` as a command shows it to people (a start line, a log line): without
    its password and printable. A URL that cannot be parsed is said to be so, not raised:
    it is only shown here, and what uses it reports its own error about it later."""
    try:
        return printable(display_url(url))
    except MailroomError:
        return "(DATABASE_URL could not be parsed)"

"""User text embedded in a message body: a comment, a pasted URL, a log line.

Such text is bounded (a 50 kB paste must not become a 50 kB notification) and word-wrapped,
breaking words that are longer than a line: a long unbroken string (a minified JSON line, a
token, a URL) never makes an unbounded line. The body's own line limit is RFC 5322 §2.1.1's
998 octets; we keep snippets to 78 characters, the limit it says lines SHOULD keep to.
"""

from __future__ import annotations

import textwrap

__all__ = ["DEFAULT_SNIPPET_CHARS", "SNIPPET_WIDTH", "snippet"]

DEFAULT_SNIPPET_CHARS = 500
SNIPPET_WIDTH = 78
_ELLIPSIS = "…"


def snippet(text: object, limit: int = DEFAULT_SNIPPET_CHARS, width: int = SNIPPET_WIDTH) -> str:
    """``text`` cut to ``limit`` characters (ending in "…" when cut) and wrapped at ``width``.

    Line breaks in the text are kept (a log excerpt stays line by line); control characters
    other than the line break and tab become spaces.
    """
    if limit < 1 or width < 10:
        raise ValueError("snippet: limit must be at least 1 and width at least 10")
    value = "" if text is None else str(text)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = "".join(c if c in "\n\t" or c.isprintable() else " " for c in value)
    # Tabs become the spaces they show as before the cut, so they count toward the limit (a
    # tab cut in as one character came out as four).
    value = value.expandtabs(4)
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + _ELLIPSIS
    lines: list[str] = []
    for line in value.split("\n"):
        wrapped = textwrap.wrap(
            line,
            width=width,
            break_long_words=True,
            break_on_hyphens=False,
            replace_whitespace=False,
            drop_whitespace=True,
        )
        lines.extend(wrapped or [""])
    return "\n".join(lines).strip("\n")

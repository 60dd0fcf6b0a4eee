"""The admin's one stylesheet stays well formed: every page appends its own section to it, and
a rule left open swallows every rule after it (the browser drops them without a word)."""

from __future__ import annotations

import re
from importlib.resources import files


def _rules_text() -> str:
    css = (files("mailroom.web") / "static" / "admin" / "admin.css").read_text(encoding="utf-8")
    return re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)


def test_every_block_is_closed_where_it_is_opened() -> None:
    depth = 0
    for number, line in enumerate(_rules_text().splitlines(), start=1):
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"line {number} closes a block that was never opened"
        assert depth <= 2, f"line {number} is three blocks deep: a rule above it is left open"
    assert depth == 0


def test_each_page_section_starts_outside_any_block() -> None:
    css = (files("mailroom.web") / "static" / "admin" / "admin.css").read_text(encoding="utf-8")
    for section in re.finditer(r"/\* === page: ([\w-]+) === \*/", css):
        before = re.sub(r"/\*.*?\*/", "", css[: section.start()], flags=re.DOTALL)
        assert before.count("{") == before.count("}"), f"the {section[1]} section is inside a rule"

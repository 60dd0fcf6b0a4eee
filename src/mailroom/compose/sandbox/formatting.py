"""``%``-formatting and ``str.format`` in a template: widths and precisions are refused
before they pad a short format into a huge string, and what is built is charged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter

from mailroom.compose.sandbox.budget import (
    MAX_SOURCE_CHARS,
    TemplateLimitError,
    charge_built,
    current_budget,
    need,
)
from mailroom.compose.sandbox.weight import need_weight, weigh

__all__ = ["BoundedEscapeFormatter", "BoundedFormatter", "check_percent_format"]


# printf-style conversion specifier (Python's "printf-style String Formatting"): the width
# and precision are the parts that can make a short format string produce a huge result.
_PERCENT_SPEC = re.compile(
    r"%(?:\([^)]*\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?[a-zA-Z%]"
)
_DIGITS = re.compile(r"\d+")


def _check_widths(numbers: Iterable[str]) -> int:
    """Refuse a width or precision over the budget; returns their sum."""
    budget = current_budget.get()
    limit = budget.remaining if budget is not None else MAX_SOURCE_CHARS
    total = 0
    for number in numbers:
        # A long run of digits is a big number; compare lengths before converting, since
        # Python refuses to convert more than 4,300 digits.
        if len(number) > len(str(limit)) or int(number) > limit:
            raise TemplateLimitError(f"a format width or precision of {number} is too large")
        total += int(number)
    return total


def check_percent_format(template: str, args: object) -> None:
    """Refuse a ``%`` format whose widths, or whose arguments, would make a huge string."""
    widths: list[str] = []
    for match in _PERCENT_SPEC.finditer(template):
        for part in (match["width"], match["precision"]):
            if part == "*":
                raise TemplateLimitError("a '*' width in a % format is not allowed in a template")
            if part:
                widths.append(part)
    padding = _check_widths(widths)  # '%999s' * 5000: each width is small, their sum is not
    budget = current_budget.get()
    limit = budget.remaining if budget is not None else MAX_SOURCE_CHARS * 10
    need(padding + weigh(template, limit) + weigh(args, limit))


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing huge widths and charging what it builds."""

    def format_field(self, value: object, format_spec: str) -> Any:
        _check_widths(_DIGITS.findall(format_spec))
        need_weight(value)
        result = super().format_field(value, format_spec)
        charge_built(result)
        return result


class BoundedEscapeFormatter(BoundedFormatter, SandboxedEscapeFormatter):
    pass

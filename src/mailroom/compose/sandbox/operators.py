"""The arithmetic operators in a template (all intercepted): an operation whose result would
be too large is refused from its operands, before Python computes it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from mailroom.compose.sandbox.budget import TemplateLimitError, need, value_limit
from mailroom.compose.sandbox.formatting import check_percent_format
from mailroom.compose.sandbox.weight import measure

__all__ = ["ARITHMETIC", "MAX_INT_BITS", "OPERATORS", "check_binop"]


#: Largest integer a template may compute, in bits (Python refuses to print an integer over
#: 4,300 digits, about 14,000 bits, anyway).
MAX_INT_BITS = 10_000


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
ARITHMETIC = frozenset(OPERATORS)


def _int_bits(value: object) -> int:
    if isinstance(value, int):
        return abs(value).bit_length()
    return 0


def _too_big_int() -> TemplateLimitError:
    return TemplateLimitError(f"computes a number larger than {MAX_INT_BITS:,} bits")


def check_binop(operator: str, left: Any, right: Any) -> tuple[int, bool] | None:
    """Refuse an operation whose result would be too large, before making it; returns the
    weight of a list or tuple result and whether it may be remembered (see
    :func:`measure`), ``None`` for others."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
                raise _too_big_int()
            return None
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | bytearray) and isinstance(times, int):
                need(len(seq) * max(times, 0))
            elif isinstance(seq, list | tuple) and isinstance(times, int) and times > 0:
                # (t,) * 100, five levels deep, is short to build but hashing or comparing
                # it walks 100**5 items: the weight of the items counts, not their number.
                need(len(seq) * times)
                weight, fixed = measure(seq, value_limit() // times + 1)
                need(weight * times)
                return weight * times, fixed
    elif operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and _int_bits(left) * right > MAX_INT_BITS
        ):
            raise _too_big_int()
    elif operator == "+":
        if isinstance(left, str | bytes | bytearray | list | tuple) and isinstance(
            right, str | bytes | bytearray | list | tuple
        ):
            need(len(left) + len(right))
            if isinstance(left, list | tuple) and isinstance(right, list | tuple):
                (one, one_fixed), (two, two_fixed) = (
                    measure(left, value_limit()),
                    measure(right, value_limit()),
                )
                need(one + two)
                return one + two, one_fixed and two_fixed
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)
    return None

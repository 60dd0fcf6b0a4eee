"""What the rewritten template calls (its internal filters and ``finalize``) and the
globals it is given in place of Jinja's (``range``, ``lipsum``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from jinja2.runtime import Context, markup_join, str_join
from jinja2.utils import generate_lorem_ipsum, pass_context
from markupsafe import soft_str

from mailroom.compose.sandbox.budget import (
    MAX_RANGE,
    TemplateLimitError,
    charge_built,
    checked_iter,
    need,
    tick,
)
from mailroom.compose.sandbox.filters import as_int
from mailroom.compose.sandbox.weight import check_built, need_weight, weigh

__all__ = [
    "BUILD",
    "CHARGE",
    "CONCAT",
    "LOOP",
    "SLICE",
    "bounded_lipsum",
    "bounded_range",
    "build_filter",
    "charge_filter",
    "concat_filter",
    "finalize",
    "loop_filter",
    "slice_filter",
]


# Internal filter names: they hold a '-', so a template cannot name them.
LOOP = "mailroom-loop"
CONCAT = "mailroom-concat"
CHARGE = "mailroom-charge"
SLICE = "mailroom-slice"
BUILD = "mailroom-build"


def bounded_range(*args: int) -> range:
    """``range`` of at most :data:`MAX_RANGE` items."""
    rng = range(*args)
    try:
        size = len(rng)
    except OverflowError:  # longer than sys.maxsize
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise TemplateLimitError(f"range() of more than {MAX_RANGE:,} items")
    return rng


@pass_context
def loop_filter(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    return checked_iter(iterable)


@pass_context
def concat_filter(context: Context, parts: list[Any]) -> str:
    """``a ~ b``: Jinja's own join, after checking the size of the result."""
    need_weight(*parts)
    if context.eval_ctx.autoescape:
        strings = [soft_str(part) for part in parts]
        need(sum(map(len, strings)))
        result = markup_join(strings)
    else:
        strings = [str(part) for part in parts]
        need(sum(map(len, strings)))
        result = str_join(strings)
    charge_built(result)
    return result


@pass_context
def slice_filter(
    context: Context, value: Any, start: int | None, stop: int | None, step: int | None
) -> Any:
    """``value[start:stop:step]``, charged: a slice is a copy."""
    tick()
    result = value[start:stop:step]
    charge_built(result)
    return result


@pass_context
def build_filter(context: Context, value: Any) -> Any:
    """A list, tuple or dict literal: refused if it weighs over the budget (``[a4, a4]``)."""
    tick()
    check_built(value)
    return value


@pass_context
def charge_filter(context: Context, value: str, size: int) -> str:
    """Charges the literal text of an output node (the part no finalize sees)."""
    budget = tick()
    if budget is not None:
        budget.charge(size)
    return value


@pass_context
def finalize(context: Context, value: Any) -> Any:
    """Every ``{{ ... }}`` value: check the deadline and charge what it prints."""
    budget = tick()
    if budget is not None:
        if isinstance(value, str):
            budget.charge(len(value))
        else:
            budget.charge(weigh(value, budget.remaining))
    return value


def bounded_lipsum(
    n: int = 5,
    html: bool = True,
    min: int = 20,
    max: int = 100,
) -> str:
    """Jinja's ``lipsum``, refused when it would be large (it is a plain Python loop)."""
    need(as_int(n) * as_int(max) * 12)  # a word is under 12 characters with its space
    return generate_lorem_ipsum(n, html, min, max)

"""``|sum`` with a list or tuple start, grown through the budget."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any

import jinja2
from jinja2.filters import make_attrgetter
from jinja2.utils import pass_environment

from mailroom.compose.sandbox.budget import current_budget, need, tick

__all__ = ["bounded_sum"]


def _check_growth(total: Sized, other: Any) -> None:
    """One addition of a bounded ``sum``: the size of the new total, then the clock."""
    tick()
    if isinstance(other, list | tuple):
        need(len(total) + len(other))
    budget = current_budget.get()
    if budget is not None:
        budget.check_time()


class _Growing(list[Any]):
    """A list that ``sum(..., start=[])`` grows: each ``+`` checks the budget and the clock.

    Python's ``sum`` adds the items one at a time, copying the total each time (quadratic);
    a start of this type makes each addition a step of the template, so the size of the total
    and the time spent are both bounded.
    """

    def __add__(self, other: Any) -> Any:
        _check_growth(self, other)
        return _Growing(list.__add__(self, other))


class _GrowingTuple(tuple[Any, ...]):
    """:class:`_Growing` for a tuple start."""

    def __add__(self, other: Any) -> Any:
        _check_growth(self, other)
        return _GrowingTuple(tuple.__add__(self, other))


@pass_environment
def bounded_sum(
    environment: jinja2.Environment,
    iterable: Iterable[Any],
    attribute: str | int | None = None,
    start: Any = 0,
) -> Any:
    """Jinja's ``|sum``, with a list or tuple ``start`` grown through the budget."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    if type(start) is list:
        total = sum(iterable, _Growing(start))
        return list(total) if isinstance(total, _Growing) else total
    if type(start) is tuple:
        total = sum(iterable, _GrowingTuple(start))
        return tuple(total) if isinstance(total, _GrowingTuple) else total
    return sum(iterable, start)

"""What a value weighs: about what ``str()`` makes of it, counted before it is made.

No value a template holds may weigh more than the budget, so that hashing, comparing,
sorting or printing it is bounded too.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from itertools import chain
from typing import Any

from jinja2.utils import Namespace

from mailroom.compose.sandbox.budget import (
    CHECK_EVERY,
    RenderBudget,
    current_budget,
    need,
    value_limit,
)

__all__ = ["builds", "check_built", "dict_weight", "measure", "need_weight", "weigh"]


def _parts(item: object) -> tuple[int, Iterable[object]] | None:
    """What ``repr(item)`` adds around its items, and the items, for a container; ``None``
    for anything else. Namespaces and dict views count: their ``repr`` shows what they hold."""
    if isinstance(item, list | tuple | set | frozenset):
        return 2 + 2 * len(item), item  # brackets, and ", " between items
    if isinstance(item, dict):
        return 2 + 4 * len(item), chain(item.keys(), item.values())
    if isinstance(item, Namespace):
        return 13, (object.__getattribute__(item, "_Namespace__attrs"),)
    if isinstance(item, KeysView | ValuesView):
        return 16 + 2 * len(item), item
    if isinstance(item, ItemsView):
        return 16 + 6 * len(item), chain.from_iterable(item)
    return None


def _leaf_weight(item: object) -> int:
    """About how long ``repr(item)`` is, for an item that is not a container."""
    if isinstance(item, str):
        if item.isprintable():
            return len(item) + item.count("\\") + item.count("'") + 2
        return (4 if item.isascii() else 10) * len(item) + 2  # '\x00', '\U000e0001'
    if isinstance(item, bytes | bytearray):
        return 4 * len(item) + 14
    if item is None or isinstance(item, bool):
        return 5
    if isinstance(item, int):
        return item.bit_length() // 3 + 2
    if isinstance(item, float):
        return 24
    try:
        # The application's objects, Jinja's loops, macros, generators: their own repr.
        return max(1, len(repr(item)))
    except Exception:
        return 8


_END = object()
#: Containers at least this heavy have their weight remembered by the render: a loop that puts
#: the same big list into a new literal on each pass weighs it once.
_HEAVY = 10_000


def _recall(budget: RenderBudget | None, value: object) -> int:
    assert budget is not None  # noqa: S101 (only called on a remembered value)
    weight = budget.weights[id(value)][1]
    budget.remember(value, weight)  # recently used: kept longest
    return weight


def _weighed(
    item: object, weights: dict[int, int], budget: RenderBudget | None, walking: set[int]
) -> int | None:
    """The weight of ``item`` if this walk or the render already knows it, else ``None``."""
    key = id(item)
    if key in weights:
        return weights[key]
    if budget is not None and key in budget.weights:
        return _recall(budget, item)
    if key in walking:
        return 5  # a namespace that holds itself: repr shows "{...}"
    return None


def measure(value: object, limit: int) -> tuple[int, bool]:
    """About how many characters ``str(value)`` makes, counted up to just past ``limit``.

    This is also what bounds hashing or comparing the value: both walk the value as ``repr``
    would. A container that holds the same object many times counts it each time (that is
    what ``repr``, ``hash`` and ``==`` do), but weighs it once: a walk visits each distinct
    container's items once, and every item adds at least one, so it is never longer than
    ``limit`` steps. The walk is iterative (a template can nest lists deeper than Python's
    recursion limit) and stops as soon as the count passes ``limit``.

    Also says whether the weight may be remembered: not if a namespace is inside, as a
    template can change what a namespace holds (``{% set ns.x = ... %}``).
    """
    budget = current_budget.get()
    if budget is not None and id(value) in budget.weights:
        return _recall(budget, value), True
    parts = _parts(value)
    if parts is None:
        return _leaf_weight(value), True
    fixed = not isinstance(value, Namespace)
    weights: dict[int, int] = {}
    # Each frame: the container, its weight so far, its items still to visit.
    stack: list[tuple[object, list[int], Iterator[object]]] = [(value, [parts[0]], iter(parts[1]))]
    walking = {id(value)}
    steps = 0
    while stack:
        container, total, items = stack[-1]
        item = next(items, _END)
        steps += 1
        if budget is not None and steps % CHECK_EVERY == 0:
            budget.check_time()
        if item is _END:
            stack.pop()
            walking.discard(id(container))
            weights[id(container)] = total[0]
            if not stack:
                return total[0], fixed
            if budget is not None and fixed and total[0] >= _HEAVY:
                budget.remember(container, total[0])
            item_weight = total[0]
            total = stack[-1][1]
        else:
            weighed = _weighed(item, weights, budget, walking)
            if weighed is not None:
                item_weight = weighed
            else:
                parts = _parts(item)
                if parts is not None:
                    fixed = fixed and not isinstance(item, Namespace)
                    walking.add(id(item))
                    stack.append((item, [parts[0]], iter(parts[1])))
                    continue
                item_weight = _leaf_weight(item)
        total[0] += item_weight
        if total[0] > limit:
            return limit + 1, False  # an item's weight is part of each container's above it
    return limit + 1, False  # not reached: the root frame returns


def weigh(value: object, limit: int) -> int:
    """The weight of ``value`` (see :func:`measure`)."""
    if isinstance(value, str):  # the common case; str() of a text is itself, not its repr
        return len(value) + 2
    return measure(value, limit)[0]


def need_weight(*values: object) -> None:
    need(sum(weigh(value, value_limit()) for value in values))


# What the template can call to build a container of values it holds: the sandbox's own
# ``dict`` and ``namespace``, and methods of built-in types (``{}.fromkeys(keys, x)``). The
# application's functions are not weighed: what they return is the application's data.
_BUILDER_OWNERS = frozenset({str, bytes, list, tuple, dict, type})


def builds(func: object) -> bool:
    owner = getattr(func, "__self__", None)
    return func is dict or func is Namespace or type(owner) in _BUILDER_OWNERS


def check_built(value: object, measured: tuple[int, bool] | None = None) -> None:
    """Refuse a container the template built (a literal, ``*``, ``+``, a call or a filter's
    result) whose weight is over the budget, and remember the weight of the last few.

    So no value a template holds weighs more than the budget, and hashing, comparing,
    sorting or printing one is bounded: ``(t,)*100`` nested five deep weighs 100**5. The
    memory keeps an accumulating ``ns.items + [item]`` in a loop linear, not quadratic.
    """
    if _parts(value) is None:
        return
    weight, fixed = measure(value, value_limit()) if measured is None else measured
    need(weight)
    budget = current_budget.get()
    if budget is not None and fixed:
        # Any size: the next ``ns.rows + [item]`` or ``dict(ns.d, **x)`` then weighs this
        # value from memory instead of walking it, so accumulating in a loop stays linear.
        budget.remember(value, weight)


def dict_weight(
    func: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[int, bool] | None:
    """The weight of ``dict(d, **kw)`` from its dicts' weights (remembered when they were
    built), so ``ns.d = dict(ns.d, **{k: v})`` in a loop does not walk ``ns.d`` each pass; it
    is never less than the result's (keys that repeat count twice). ``None``: measure the
    result (the arguments are not all dicts, e.g. ``dict(zip(a, b))``)."""
    if func is not dict or not all(type(arg) is dict for arg in args):
        return None
    parts = [measure(arg, value_limit()) for arg in (*args, dict(kwargs))]
    return sum(weight for weight, _ in parts), all(fixed for _, fixed in parts)

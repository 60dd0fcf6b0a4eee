"""The built-in filters and string methods, bounded: the checks made before each call whose
result can be much larger than its input, and the wrapper that makes them and charges the
result."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from functools import update_wrapper
from pprint import pformat
from typing import Any

from jinja2.runtime import Context
from jinja2.utils import pass_context

from mailroom.compose.sandbox.budget import (
    MAX_RANGE,
    TemplateLimitError,
    charge_built,
    checked_iter,
    need,
    tick,
    value_limit,
)
from mailroom.compose.sandbox.formatting import check_percent_format
from mailroom.compose.sandbox.weight import need_weight, weigh

__all__ = ["MAX_ROUND_DIGITS", "as_int", "bounded_filter", "bounded_pprint", "check_method"]


#: Largest ``|round`` precision; ``round(5, -10**9)`` computes ``10**(10**9)``.
MAX_ROUND_DIGITS = 1_000


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def as_int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _len(value: object) -> int:
    return len(value) if isinstance(value, str | bytes | bytearray) else 0


def _replaced_size(s: object, old: object, new: object, count: object) -> int:
    if not isinstance(s, str | bytes | bytearray) or not isinstance(old, str | bytes):
        return 0
    hits = s.count(old) if old else len(s) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(0, _len(new) - len(old))


def _padded_size(s: object, width: object) -> int:
    return max(_len(s), as_int(width))


def _lines(s: object) -> int:
    return (s.count("\n") + 1) if isinstance(s, str) else 1


# Filters whose result is about as long as ``str(value)``.
_STRINGIFYING = frozenset(
    {"string", "pprint", "tojson", "xmlattr", "urlencode", "safe", "e", "escape", "forceescape"}
)


# Filters that loop in Python over the words of their text, where no hook of ours runs: their
# input is capped so that one call ends in about a second.
_WORDWISE_INPUT = {"urlize": 200_000, "title": 1_000_000, "wordwrap": 1_000_000}


_Args = tuple[Any, ...]
_Kwargs = Mapping[str, Any]


def _center(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    need(_padded_size(value, _arg(args, kwargs, 0, "width")))
    return value


def _indent(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    width = _arg(args, kwargs, 0, "width")
    per_line = _len(width) if isinstance(width, str) else as_int(width)
    need(_len(value) + _lines(value) * per_line)
    return value


#: ``|wordwrap`` cuts a long word by slicing off one line at a time, copying the rest each
#: time: its time grows as length squared over width; this much is about a second.
_WRAP_WORK = 40_000_000_000


def _wordwrap(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    width = max(1, as_int(_arg(args, kwargs, 0, "width")) or 79)
    wrap = _arg(args, kwargs, 2, "wrapstring")
    longest = math.isqrt(_WRAP_WORK * width)
    if _len(value) > longest:
        raise TemplateLimitError(
            f"|wordwrap({width}) of more than {longest:,} characters; "
            "use a larger width or a shorter text"
        )
    need(_len(value) + (_len(value) // width + _lines(value)) * max(1, _len(wrap)))
    return value


def _replace(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    old, new, count = (_arg(args, kwargs, i, n) for i, n in enumerate(("old", "new", "count")))
    need(_replaced_size(value, old, new, count))
    return value


def _format(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    if isinstance(value, str):
        check_percent_format(value, (args, kwargs))
    return value


def _join(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    items = list(checked_iter(value))
    need_weight(items)
    need(len(items) * _len(_arg(args, kwargs, 0, "d")))
    return items


def _item_count(name: str, parameter: str) -> Callable[[Any, _Args, _Kwargs], Any]:
    def check(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
        count = as_int(_arg(args, kwargs, 0, parameter))
        if count > MAX_RANGE:
            raise TemplateLimitError(f"|{name}({count}) is more than {MAX_RANGE:,} items")
        return value

    return check


def _round(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    if abs(as_int(_arg(args, kwargs, 0, "precision"))) > MAX_ROUND_DIGITS:
        raise TemplateLimitError(f"|round precision beyond {MAX_ROUND_DIGITS} digits")
    return value


def _iterated(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    # Consumed by Python's own sum(), sorted(), ...: iterate through the budget.
    return value if isinstance(value, str | Mapping) else checked_iter(value)


def _stringified(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    need_weight(value)
    return value


#: Most weight of a value laid out over lines, by ``|pprint`` or ``|tojson(indent=...)``: each
#: line is indented by the depth it is at (in pprint, by the keys above it too), so the output
#: can grow as the square of the input.
_LAID_OUT = 2_000
_MAX_INDENT = 16


def _tojson(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    need_weight(value)
    indent = _arg(args, kwargs, 0, "indent")
    if indent is None:
        return value
    size = _len(indent) if isinstance(indent, str) else as_int(indent)
    if size > _MAX_INDENT or weigh(value, _LAID_OUT) > _LAID_OUT:
        raise TemplateLimitError(
            f"|tojson with an indent is for values under {_LAID_OUT:,} characters and indents "
            f"of at most {_MAX_INDENT}; use |tojson without an indent"
        )
    return value


def _filled(name: str, parameter: str) -> Callable[[Any, _Args, _Kwargs], Any]:
    """``|batch`` and ``|slice``: at most :data:`MAX_RANGE` groups, and a ``fill_with`` value
    repeated (up to once per item of a group, or once per group) weighs that many times."""
    count_check = _item_count(name, parameter)

    def check(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
        value = count_check(value, args, kwargs)
        fill = _arg(args, kwargs, 1, "fill_with")
        if fill is not None:
            count = max(0, as_int(_arg(args, kwargs, 0, parameter)))
            need(weigh(fill, value_limit() // max(count, 1) + 1) * count)
        return value

    return check


def bounded_pprint(value: Any) -> str:
    """Python's pprint up to :data:`_LAID_OUT`; above it, all on one line (like ``repr``)."""
    width = 80 if weigh(value, _LAID_OUT) <= _LAID_OUT else sys.maxsize
    return pformat(value, width=width)


# What to check before each built-in filter whose result can be much larger than its input
# (or that consumes an iterable without a hook of ours).
_FILTER_CHECKS: dict[str, Callable[[Any, _Args, _Kwargs], Any]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "format": _format,
    "join": _join,
    "batch": _filled("batch", "linecount"),
    "slice": _filled("slice", "slices"),
    "round": _round,
    **dict.fromkeys(("sum", "list", "unique", "sort", "min", "max"), _iterated),
    **dict.fromkeys(_STRINGIFYING, _stringified),
    "tojson": _tojson,
}


def _check_filter(name: str, value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    """Refuse a filter call whose result would be huge, before making it; returns ``value``
    (possibly made into a list, or wrapped so iterating it checks the budget)."""
    longest = _WORDWISE_INPUT.get(name)
    if longest is not None and _len(value) > longest:
        raise TemplateLimitError(f"|{name} of more than {longest:,} characters")
    check = _FILTER_CHECKS.get(name)
    return value if check is None else check(value, args, kwargs)


def check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a str/bytes/int method whose result would be huge; returns ``args``
    (with an iterable to join made into a list, to be measured)."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        if name in {"center", "ljust", "rjust", "zfill"}:
            need(_padded_size(owner, _arg(args, kwargs, 0, "width")))
        elif name == "expandtabs":
            tab = _arg(args, kwargs, 0, "tabsize")
            need(
                len(owner)
                + owner.count(b"\t" if isinstance(owner, bytes | bytearray) else "\t")  # type: ignore[arg-type]
                * (8 if tab is None else as_int(tab))
            )
        elif name == "replace":
            old, new, count = (
                _arg(args, kwargs, i, n) for i, n in enumerate(("old", "new", "count"))
            )
            need(_replaced_size(owner, old, new, -1 if count is None else count))
        elif name == "join" and args:
            items = list(checked_iter(args[0]))
            need_weight(items)
            need(len(items) * len(owner))
            args = (items, *args[1:])
        elif name == "translate":
            table = _arg(args, kwargs, 0, "table")
            longest = 1
            if isinstance(table, Mapping):
                longest = max([1, *(_len(v) for v in table.values())])
            need(len(owner) * longest)
    elif isinstance(owner, int) and name == "to_bytes":
        need(as_int(_arg(args, kwargs, 0, "length")))
    return args


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its arguments checked and its result charged.

    The wrapper takes the render context, which also keeps Jinja from calling the filter while
    compiling (it folds only filters that need no context).
    """
    passes = getattr(func, "jinja_pass_arg", None)
    passes_name = getattr(passes, "name", None)

    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        value = _check_filter(name, value, args, kwargs)
        if passes_name == "context":
            result = func(context, value, *args, **kwargs)
        elif passes_name == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passes_name == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        charge_built(result)
        return result

    update_wrapper(bounded, func)
    return pass_context(bounded)

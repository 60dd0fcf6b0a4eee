"""A Jinja sandbox with bounds on time and size, for templates written by untrusted people.

Jinja's sandbox stops a template from reaching Python internals, but not from spending the
machine: ``{{ 9**(9**9) }}`` hangs the compiler (constants are folded while compiling),
nested loops run for ever, ``'a' * 10**9`` or ``|center(10**9)`` take gigabytes. Python
cannot stop a thread from outside, so every bound here is checked from inside, at the points
where a template gets control:

* **Nothing unchecked is computed while compiling.** Every binary operator is intercepted
  (Jinja never folds an intercepted operator; we fold an operator on two constants ourselves,
  after the checks made when rendering, so ``{{ 9**(9**9) }}`` is refused when the template is
  saved), every filter and ``finalize`` take the render context (Jinja never folds those), and
  the optimizer is off. Compiling is then about proportional to the source, which
  :data:`MAX_SOURCE_CHARS` bounds, and :data:`COMPILE_TIMEOUT` is checked as it goes.
* **A budget per render** (:class:`RenderBudget`, in a context variable so concurrent renders
  in threads are independent) holds a deadline, a count of loop iterations and a count of
  characters built. Every attribute lookup, call, operator, filter, loop iteration and output
  is a step, and the clock is read every few steps; everything that builds text or lists
  charges what it built, so the whole render — its output and whatever it built along the way
  in macros, ``set`` blocks and variables — stays within :attr:`RenderBudget.max_chars`.
* **One step is short.** Between two checks a template can only run one built-in operation on
  values the budget already bounds; the few filters that loop in Python over the words of a
  text take a capped input. A step can still overrun the deadline by about a second (a regular
  expression over megabytes): the bound is on the order of the timeout, not exact.
* **Sizes are checked before building.** An operation whose result would be large (``*`` on
  a sequence, ``**`` or ``*`` on integers, ``~``, ``%``, ``str.format``, the string methods and
  filters that pad, repeat or join) is refused from its arguments, before Python allocates.
* **No value weighs more than the budget.** A value's weight is about what ``str()`` makes of
  it, counting what lists, tuples, dicts, namespaces and dict views hold, each time they hold
  it (:func:`_measure`): that is also what hashing or comparing it walks. ``*`` and ``+`` on
  sequences, literals, calls and filters refuse a result over the budget, so ``(t,) * 100``
  nested five deep (short to build, 100**5 items to hash) is refused where it is built, and
  printing, ``|string`` or ``|pprint`` are refused from the weight, before Python makes the
  string.

Every refusal raises :class:`TemplateLimitError`; the template library turns it into a
:class:`~mailroom.errors.TemplateError` naming the template.
"""

from __future__ import annotations

import math
import operator
import re
import sys
import time
import types
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sized,
    ValuesView,
)
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import update_wrapper
from itertools import chain, islice
from pprint import pformat
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import TemplateRuntimeError
from jinja2.ext import Extension
from jinja2.filters import make_attrgetter
from jinja2.lexer import Token, TokenStream
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import Namespace, generate_lorem_ipsum, pass_context, pass_environment
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, soft_str

__all__ = [
    "COMPILE_TIMEOUT",
    "MAX_LOOP_ITERATIONS",
    "MAX_RANGE",
    "MAX_SOURCE_CHARS",
    "BoundedSandbox",
    "RenderBudget",
    "TemplateLimitError",
]

#: Longest template source (characters) we compile: compiling is linear in the source, so
#: this bounds compile time. An email template is rarely over 100 kB.
MAX_SOURCE_CHARS = 200_000
#: Seconds compiling one template may take. Compiling is bounded by the source's length; this
#: is the backstop for shapes Jinja compiles slowly (deeply nested loops).
COMPILE_TIMEOUT = 10.0
#: Most items one ``range()`` may produce (Jinja's own sandbox limit).
MAX_RANGE = 100_000
#: Most loop iterations, over all loops, in one render. Unlike the time limit this does not
#: depend on how busy the machine is, so a template that passes a preview passes in a worker.
MAX_LOOP_ITERATIONS = 1_000_000
#: Largest integer a template may compute, in bits (Python refuses to print an integer over
#: 4,300 digits, about 14,000 bits, anyway).
MAX_INT_BITS = 10_000
#: Largest ``|round`` precision; ``round(5, -10**9)`` computes ``10**(10**9)``.
MAX_ROUND_DIGITS = 1_000

# Internal filter names: they hold a '-', so a template cannot name them.
_LOOP = "mailroom-loop"
_CONCAT = "mailroom-concat"
_CHARGE = "mailroom-charge"
_SLICE = "mailroom-slice"
_BUILD = "mailroom-build"

_CHECK_EVERY = 1024  # items between deadline checks in a long walk or loop
_MAX_FOLDED = 10_000  # longest string a constant expression is folded into while compiling
_REMEMBERED = 8  # weights of recently built containers a render keeps
_BUILT_FACTOR = 20  # characters built on the way, in all, per character that may be printed


class TemplateLimitError(TemplateRuntimeError):
    """A template went over a bound: too long, too big, too many iterations."""


@dataclass(slots=True)
class RenderBudget:
    """What one render of one template part may spend.

    ``timeout`` seconds of wall time, ``max_chars`` characters printed (and the most any one
    value may weigh, less what is printed), and ``max_chars`` times :data:`_BUILT_FACTOR`
    characters built in all on the way; ``activity`` is what is being timed, for the message.

    What is built on the way is counted apart from what is printed: a loop that adds a name
    to a list on each of 5,000 passes copies the list each time (25 kB at the end, 60 MB
    copied in all), an ordinary template that must not be refused as if it printed 60 MB.
    Each value is still bounded by ``max_chars`` when it is built, and the clock bounds the
    copying; the larger total only stops a loop from churning memory without end.
    """

    timeout: float
    max_chars: int
    activity: str = "render"
    deadline: float = field(init=False)
    chars: int = 0
    built: int = 0
    iterations: int = 0
    ticks: int = 0
    #: The weights of the last few containers built, by id (each held, so the id stays its).
    weights: dict[int, tuple[object, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def remember(self, value: object, weight: int) -> None:
        self.weights.pop(id(value), None)
        self.weights[id(value)] = (value, weight)
        if len(self.weights) > _REMEMBERED:
            del self.weights[next(iter(self.weights))]  # the oldest

    @property
    def remaining(self) -> int:
        return self.max_chars - self.chars

    def tick(self) -> None:
        """A template step: look at the clock every few (each step is bounded in size)."""
        self.ticks += 1
        if not self.ticks & 15:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            if self.activity == "compile":
                raise TemplateLimitError(
                    f"took longer than {self.timeout:g} s to compile; "
                    "look for deeply nested loops or blocks"
                )
            raise TemplateLimitError(
                f"took longer than {self.timeout:g} s to render (TEMPLATE_RENDER_TIMEOUT); "
                "look for loops over large ranges or macros that call themselves"
            )

    def need(self, size: int) -> None:
        """Refuse now if building ``size`` more characters would go over the budget."""
        if size > self.max_chars - self.chars:
            raise TemplateLimitError(
                f"builds more than {self.max_chars:,} characters "
                "(TEMPLATE_MAX_OUTPUT_CHARS); look for large repeats, paddings or loops"
            )

    def charge(self, size: int) -> None:
        """Count ``size`` characters printed."""
        self.need(size)
        self.chars += size

    def charge_built(self, size: int) -> None:
        """Count a value of ``size`` characters built on the way (not printed yet)."""
        self.need(size)
        self.built += size
        if self.built > self.max_chars * _BUILT_FACTOR:
            raise TemplateLimitError(
                f"builds more than {self.max_chars * _BUILT_FACTOR:,} characters in all "
                f"({_BUILT_FACTOR} times TEMPLATE_MAX_OUTPUT_CHARS); look for loops that copy "
                "large texts or lists on each pass"
            )


_budget: ContextVar[RenderBudget | None] = ContextVar("mailroom_template_budget", default=None)


def _current() -> RenderBudget | None:
    budget = _budget.get()
    if budget is not None:
        budget.tick()
    return budget


def _need(size: int) -> None:
    """Refuse a result of ``size``: against the budget of the render (or compile) under way,
    else (a template rendered with a plain ``render()``) against a fixed sanity limit."""
    budget = _current()
    if budget is not None:
        budget.need(size)
    elif size > MAX_SOURCE_CHARS * 10:
        raise TemplateLimitError(f"builds more than {MAX_SOURCE_CHARS * 10:,} characters")


def _charge(result: object) -> None:
    budget = _budget.get()
    if budget is None:
        return
    if isinstance(result, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        budget.charge_built(len(result))


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


def _measure(value: object, limit: int) -> tuple[int, bool]:
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
    budget = _budget.get()
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
        if budget is not None and steps % _CHECK_EVERY == 0:
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


def _weight(value: object, limit: int) -> int:
    """The weight of ``value`` (see :func:`_measure`)."""
    if isinstance(value, str):  # the common case; str() of a text is itself, not its repr
        return len(value) + 2
    return _measure(value, limit)[0]


def _limit() -> int:
    """The most characters a value may still weigh."""
    budget = _budget.get()
    return budget.remaining if budget is not None else MAX_SOURCE_CHARS * 10


def _need_weight(*values: object) -> None:
    _need(sum(_weight(value, _limit()) for value in values))


# What the template can call to build a container of values it holds: the sandbox's own
# ``dict`` and ``namespace``, and methods of built-in types (``{}.fromkeys(keys, x)``). The
# application's functions are not weighed: what they return is the application's data.
_BUILDER_OWNERS = frozenset({str, bytes, list, tuple, dict, type})


def _builds(func: object) -> bool:
    owner = getattr(func, "__self__", None)
    return func is dict or func is Namespace or type(owner) in _BUILDER_OWNERS


def _check_built(value: object, measured: tuple[int, bool] | None = None) -> None:
    """Refuse a container the template built (a literal, ``*``, ``+``, a call or a filter's
    result) whose weight is over the budget, and remember the weight of the last few.

    So no value a template holds weighs more than the budget, and hashing, comparing,
    sorting or printing one is bounded: ``(t,)*100`` nested five deep weighs 100**5. The
    memory keeps an accumulating ``ns.items + [item]`` in a loop linear, not quadratic.
    """
    if _parts(value) is None:
        return
    weight, fixed = _measure(value, _limit()) if measured is None else measured
    _need(weight)
    budget = _budget.get()
    if budget is not None and fixed:
        # Any size: the next ``ns.rows + [item]`` or ``dict(ns.d, **x)`` then weighs this
        # value from memory instead of walking it, so accumulating in a loop stays linear.
        budget.remember(value, weight)


def _int_bits(value: object) -> int:
    if isinstance(value, int):
        return abs(value).bit_length()
    return 0


def _too_big_int() -> TemplateLimitError:
    return TemplateLimitError(f"computes a number larger than {MAX_INT_BITS:,} bits")


# -- %-formatting and str.format ----------------------------------------------------------------

# printf-style conversion specifier (Python's "printf-style String Formatting"): the width
# and precision are the parts that can make a short format string produce a huge result.
_PERCENT_SPEC = re.compile(
    r"%(?:\([^)]*\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?[a-zA-Z%]"
)
_DIGITS = re.compile(r"\d+")


def _check_widths(numbers: Iterable[str]) -> int:
    """Refuse a width or precision over the budget; returns their sum."""
    budget = _budget.get()
    limit = budget.remaining if budget is not None else MAX_SOURCE_CHARS
    total = 0
    for number in numbers:
        # A long run of digits is a big number; compare lengths before converting, since
        # Python refuses to convert more than 4,300 digits.
        if len(number) > len(str(limit)) or int(number) > limit:
            raise TemplateLimitError(f"a format width or precision of {number} is too large")
        total += int(number)
    return total


def _check_percent_format(template: str, args: object) -> None:
    """Refuse a ``%`` format whose widths, or whose arguments, would make a huge string."""
    widths: list[str] = []
    for match in _PERCENT_SPEC.finditer(template):
        for part in (match["width"], match["precision"]):
            if part == "*":
                raise TemplateLimitError("a '*' width in a % format is not allowed in a template")
            if part:
                widths.append(part)
    padding = _check_widths(widths)  # '%999s' * 5000: each width is small, their sum is not
    budget = _budget.get()
    limit = budget.remaining if budget is not None else MAX_SOURCE_CHARS * 10
    _need(padding + _weight(template, limit) + _weight(args, limit))


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing huge widths and charging what it builds."""

    def format_field(self, value: object, format_spec: str) -> Any:
        _check_widths(_DIGITS.findall(format_spec))
        _need_weight(value)
        result = super().format_field(value, format_spec)
        _charge(result)
        return result


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


# -- checks for filters and string methods ------------------------------------------------------


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _as_int(value: object) -> int:
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
    return max(_len(s), _as_int(width))


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
    _need(_padded_size(value, _arg(args, kwargs, 0, "width")))
    return value


def _indent(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    width = _arg(args, kwargs, 0, "width")
    per_line = _len(width) if isinstance(width, str) else _as_int(width)
    _need(_len(value) + _lines(value) * per_line)
    return value


#: ``|wordwrap`` cuts a long word by slicing off one line at a time, copying the rest each
#: time: its time grows as length squared over width; this much is about a second.
_WRAP_WORK = 40_000_000_000


def _wordwrap(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    width = max(1, _as_int(_arg(args, kwargs, 0, "width")) or 79)
    wrap = _arg(args, kwargs, 2, "wrapstring")
    longest = math.isqrt(_WRAP_WORK * width)
    if _len(value) > longest:
        raise TemplateLimitError(
            f"|wordwrap({width}) of more than {longest:,} characters; "
            "use a larger width or a shorter text"
        )
    _need(_len(value) + (_len(value) // width + _lines(value)) * max(1, _len(wrap)))
    return value


def _replace(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    old, new, count = (_arg(args, kwargs, i, n) for i, n in enumerate(("old", "new", "count")))
    _need(_replaced_size(value, old, new, count))
    return value


def _format(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    if isinstance(value, str):
        _check_percent_format(value, (args, kwargs))
    return value


def _join(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    items = list(_checked_iter(value))
    _need_weight(items)
    _need(len(items) * _len(_arg(args, kwargs, 0, "d")))
    return items


def _item_count(name: str, parameter: str) -> Callable[[Any, _Args, _Kwargs], Any]:
    def check(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
        count = _as_int(_arg(args, kwargs, 0, parameter))
        if count > MAX_RANGE:
            raise TemplateLimitError(f"|{name}({count}) is more than {MAX_RANGE:,} items")
        return value

    return check


def _round(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    if abs(_as_int(_arg(args, kwargs, 0, "precision"))) > MAX_ROUND_DIGITS:
        raise TemplateLimitError(f"|round precision beyond {MAX_ROUND_DIGITS} digits")
    return value


def _iterated(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    # Consumed by Python's own sum(), sorted(), ...: iterate through the budget.
    return value if isinstance(value, str | Mapping) else _checked_iter(value)


def _stringified(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    _need_weight(value)
    return value


#: Most weight of a value laid out over lines, by ``|pprint`` or ``|tojson(indent=...)``: each
#: line is indented by the depth it is at (in pprint, by the keys above it too), so the output
#: can grow as the square of the input.
_LAID_OUT = 2_000
_MAX_INDENT = 16


def _tojson(value: Any, args: _Args, kwargs: _Kwargs) -> Any:
    _need_weight(value)
    indent = _arg(args, kwargs, 0, "indent")
    if indent is None:
        return value
    size = _len(indent) if isinstance(indent, str) else _as_int(indent)
    if size > _MAX_INDENT or _weight(value, _LAID_OUT) > _LAID_OUT:
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
            count = max(0, _as_int(_arg(args, kwargs, 0, parameter)))
            _need(_weight(fill, _limit() // max(count, 1) + 1) * count)
        return value

    return check


def _check_growth(total: Sized, other: Any) -> None:
    """One addition of a bounded ``sum``: the size of the new total, then the clock."""
    _current()
    if isinstance(other, list | tuple):
        _need(len(total) + len(other))
    budget = _budget.get()
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
def _bounded_sum(
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


def _bounded_pprint(value: Any) -> str:
    """Python's pprint up to :data:`_LAID_OUT`; above it, all on one line (like ``repr``)."""
    width = 80 if _weight(value, _LAID_OUT) <= _LAID_OUT else sys.maxsize
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


def _check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a str/bytes/int method whose result would be huge; returns ``args``
    (with an iterable to join made into a list, to be measured)."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        if name in {"center", "ljust", "rjust", "zfill"}:
            _need(_padded_size(owner, _arg(args, kwargs, 0, "width")))
        elif name == "expandtabs":
            tab = _arg(args, kwargs, 0, "tabsize")
            _need(
                len(owner)
                + owner.count(b"\t" if isinstance(owner, bytes | bytearray) else "\t")  # type: ignore[arg-type]
                * (8 if tab is None else _as_int(tab))
            )
        elif name == "replace":
            old, new, count = (
                _arg(args, kwargs, i, n) for i, n in enumerate(("old", "new", "count"))
            )
            _need(_replaced_size(owner, old, new, -1 if count is None else count))
        elif name == "join" and args:
            items = list(_checked_iter(args[0]))
            _need_weight(items)
            _need(len(items) * len(owner))
            args = (items, *args[1:])
        elif name == "translate":
            table = _arg(args, kwargs, 0, "table")
            longest = 1
            if isinstance(table, Mapping):
                longest = max([1, *(_len(v) for v in table.values())])
            _need(len(owner) * longest)
    elif isinstance(owner, int) and name == "to_bytes":
        _need(_as_int(_arg(args, kwargs, 0, "length")))
    return args


def _checked_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate, checking the deadline and counting iterations against the budget."""
    budget = _budget.get()
    if budget is None:
        yield from iterable
        return
    iterator = iter(iterable)
    while True:
        chunk = list(islice(iterator, _CHECK_EVERY))
        if not chunk:
            return
        budget.iterations += len(chunk)
        if budget.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateLimitError(
                f"runs more than {MAX_LOOP_ITERATIONS:,} loop iterations; "
                "look for nested loops over large ranges"
            )
        budget.check_time()
        yield from chunk


def _bounded_range(*args: int) -> range:
    """``range`` of at most :data:`MAX_RANGE` items."""
    rng = range(*args)
    try:
        size = len(rng)
    except OverflowError:  # longer than sys.maxsize
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise TemplateLimitError(f"range() of more than {MAX_RANGE:,} items")
    return rng


# -- filters the rewritten template calls -------------------------------------------------------


@pass_context
def _loop_filter(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    return _checked_iter(iterable)


@pass_context
def _concat_filter(context: Context, parts: list[Any]) -> str:
    """``a ~ b``: Jinja's own join, after checking the size of the result."""
    _need_weight(*parts)
    if context.eval_ctx.autoescape:
        strings = [soft_str(part) for part in parts]
        _need(sum(map(len, strings)))
        result = markup_join(strings)
    else:
        strings = [str(part) for part in parts]
        _need(sum(map(len, strings)))
        result = str_join(strings)
    _charge(result)
    return result


@pass_context
def _slice_filter(
    context: Context, value: Any, start: int | None, stop: int | None, step: int | None
) -> Any:
    """``value[start:stop:step]``, charged: a slice is a copy."""
    _current()
    result = value[start:stop:step]
    _charge(result)
    return result


@pass_context
def _build_filter(context: Context, value: Any) -> Any:
    """A list, tuple or dict literal: refused if it weighs over the budget (``[a4, a4]``)."""
    _current()
    _check_built(value)
    return value


@pass_context
def _charge_filter(context: Context, value: str, size: int) -> str:
    """Charges the literal text of an output node (the part no finalize sees)."""
    budget = _current()
    if budget is not None:
        budget.charge(size)
    return value


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    """Every ``{{ ... }}`` value: check the deadline and charge what it prints."""
    budget = _current()
    if budget is not None:
        if isinstance(value, str):
            budget.charge(len(value))
        else:
            budget.charge(_weight(value, budget.remaining))
    return value


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its arguments checked and its result charged.

    The wrapper takes the render context, which also keeps Jinja from calling the filter while
    compiling (it folds only filters that need no context).
    """
    passes = getattr(func, "jinja_pass_arg", None)
    passes_name = getattr(passes, "name", None)

    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _current()
        value = _check_filter(name, value, args, kwargs)
        if passes_name == "context":
            result = func(context, value, *args, **kwargs)
        elif passes_name == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passes_name == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        _charge(result)
        return result

    update_wrapper(bounded, func)
    return pass_context(bounded)


# -- the AST rewrite ---------------------------------------------------------------------------


def _internal_filter(node: nodes.Expr, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_ARITHMETIC = frozenset(_OPERATORS)


class _Rewrite(NodeTransformer):
    """Routes loops, ``~`` and literal output through the budget (see the module docstring)."""

    # NodeTransformer dispatches on the node class's name: visit_For, visit_Concat, ...
    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        node.iter = _internal_filter(cast(nodes.Expr, node.iter), _LOOP)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:  # noqa: N802
        # Jinja compiles x[a:b] to plain Python slicing, past the sandbox's getitem; a slice
        # is a copy, so it goes through a filter that charges it.
        self.generic_visit(node)
        if not isinstance(node.arg, nodes.Slice) or node.ctx != "load":
            return node
        bounds = [
            part if part is not None else nodes.Const(None, lineno=node.lineno)
            for part in (node.arg.start, node.arg.stop, node.arg.step)
        ]
        return _internal_filter(node.node, _SLICE, *bounds)

    def _built(self, node: nodes.List | nodes.Tuple | nodes.Dict) -> nodes.Node:
        # A literal holding big values is as heavy as all of them together.
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # {% for a, b in ... %}: a target, not a value
        return _internal_filter(node, _BUILD)

    visit_List = visit_Tuple = visit_Dict = _built  # noqa: N815

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return _internal_filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT)

    def _fold(self, node: nodes.BinExpr) -> nodes.Node:
        """Fold an operator on two constants, as Jinja would, but checked first: so that
        ``{{ 9**(9**9) }}`` is refused when the template is saved, not when it is sent."""
        self.generic_visit(node)
        if not (isinstance(node.left, nodes.Const) and isinstance(node.right, nodes.Const)):
            return node
        left, right = node.left.value, node.right.value
        _check_binop(node.operator, left, right)  # TemplateLimitError: refuse the template
        try:
            value = _OPERATORS[node.operator](left, right)
        except Exception:
            return node  # 1/0 and the like fail when rendered, as Jinja leaves them
        if isinstance(value, str) and len(value) > _MAX_FOLDED:
            return node  # built (and charged) when rendered, not kept in the compiled code
        return nodes.Const(value, lineno=node.lineno)

    visit_Add = visit_Sub = visit_Mul = visit_Div = _fold  # noqa: N815
    visit_FloorDiv = visit_Mod = visit_Pow = _fold  # noqa: N815

    def visit_Output(self, node: nodes.Output) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        literal = sum(len(n.data) for n in node.nodes if isinstance(n, nodes.TemplateData))
        if literal:
            empty = nodes.Const("", lineno=node.lineno)
            node.nodes.append(_internal_filter(empty, _CHARGE, nodes.Const(literal)))
        return node


def _rewrite(tree: nodes.Template) -> nodes.Template:
    _Rewrite().visit(tree)
    # Every template, included or extended ones too, checks the deadline when it starts.
    start = _internal_filter(nodes.Const("", lineno=1), _CHARGE, nodes.Const(0))
    tree.body.insert(0, nodes.Output([start], lineno=1))
    return tree


class _CompileDeadline(Extension):
    """Checks the deadline while the lexer and parser work through the tokens."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        for count, token in enumerate(stream):
            if count % 256 == 0:
                _current()
            yield token


class _BoundedCodeGenerator(CodeGenerator):
    """Checks the deadline at every node the code generator visits."""

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        _current()
        return super().visit(node, *args, **kwargs)


def _bounded_lipsum(
    n: int = 5,
    html: bool = True,
    min: int = 20,
    max: int = 100,
) -> str:
    """Jinja's ``lipsum``, refused when it would be large (it is a plain Python loop)."""
    _need(_as_int(n) * _as_int(max) * 12)  # a word is under 12 characters with its space
    return generate_lorem_ipsum(n, html, min, max)


# -- the environment ---------------------------------------------------------------------------


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the bounds described in the module docstring.

    Render with :meth:`render_bounded`; a render outside it has no time or size budget (the
    size checks before building still hold).
    """

    intercepted_binops = _ARITHMETIC
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        extensions = [*options.pop("extensions", ()), _CompileDeadline]
        super().__init__(optimized=False, finalize=_finalize, extensions=extensions, **options)
        self.globals["range"] = _bounded_range
        self.globals["lipsum"] = _bounded_lipsum
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP] = _loop_filter
        self.filters[_CONCAT] = _concat_filter
        self.filters[_CHARGE] = _charge_filter
        self.filters[_SLICE] = _slice_filter
        self.filters[_BUILD] = _build_filter
        self.filters["sum"] = _bounded_filter("sum", _bounded_sum)
        self.filters["pprint"] = _bounded_filter("pprint", _bounded_pprint)

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Add a filter, bounded like the built-in ones."""
        self.filters[name] = _bounded_filter(name, func)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Jinja's one place where a template's tree exists before it is compiled; overriding
        # it covers from_string, get_template, include, import and extends alike.
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateLimitError(
                f"is {len(source):,} characters long; the most is {MAX_SOURCE_CHARS:,}"
            )
        return _rewrite(super()._parse(source, name, filename))

    # Each hook below is a point where the template gets control: check the deadline there.

    def getattr(self, obj: Any, attribute: str) -> Any:
        _current()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _current()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _current()
        args = _check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        _charge(result)
        if _builds(__obj):
            # dict(a=x, b=x), namespace(...), {}.fromkeys(keys, x)
            _check_built(result, _dict_weight(__obj, args, kwargs))
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _current()
        measured = _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        _charge(result)
        if measured is not None:
            _check_built(result, measured)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's version, with a formatter that bounds widths and charges what it builds.
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(f_self, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=f_self.escape)
        else:
            formatter = _BoundedFormatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)

    def compile_bounded(self, source: str, max_chars: int) -> jinja2.Template:
        """Compile ``source`` within :data:`COMPILE_TIMEOUT`; a constant expression may build
        ``max_chars`` characters."""
        token = _budget.set(RenderBudget(COMPILE_TIMEOUT, max_chars, "compile"))
        try:
            return self.from_string(source)
        finally:
            _budget.reset(token)

    def render_bounded(
        self, template: jinja2.Template, context: Mapping[str, Any], budget: RenderBudget
    ) -> str:
        """Render ``template`` within ``budget``, output counted as it is produced."""
        token = _budget.set(budget)
        try:
            return str(template.render(context))
        finally:
            _budget.reset(token)


def _dict_weight(
    func: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[int, bool] | None:
    """The weight of ``dict(d, **kw)`` from its dicts' weights (remembered when they were
    built), so ``ns.d = dict(ns.d, **{k: v})`` in a loop does not walk ``ns.d`` each pass; it
    is never less than the result's (keys that repeat count twice). ``None``: measure the
    result (the arguments are not all dicts, e.g. ``dict(zip(a, b))``)."""
    if func is not dict or not all(type(arg) is dict for arg in args):
        return None
    parts = [_measure(arg, _limit()) for arg in (*args, dict(kwargs))]
    return sum(weight for weight, _ in parts), all(fixed for _, fixed in parts)


def _check_binop(operator: str, left: Any, right: Any) -> tuple[int, bool] | None:
    """Refuse an operation whose result would be too large, before making it; returns the
    weight of a list or tuple result and whether it may be remembered (see
    :func:`_measure`), ``None`` for others."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
                raise _too_big_int()
            return None
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | bytearray) and isinstance(times, int):
                _need(len(seq) * max(times, 0))
            elif isinstance(seq, list | tuple) and isinstance(times, int) and times > 0:
                # (t,) * 100, five levels deep, is short to build but hashing or comparing
                # it walks 100**5 items: the weight of the items counts, not their number.
                _need(len(seq) * times)
                weight, fixed = _measure(seq, _limit() // times + 1)
                _need(weight * times)
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
            _need(len(left) + len(right))
            if isinstance(left, list | tuple) and isinstance(right, list | tuple):
                (one, one_fixed), (two, two_fixed) = (
                    _measure(left, _limit()),
                    _measure(right, _limit()),
                )
                _need(one + two)
                return one + two, one_fixed and two_fixed
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left, right)
    return None

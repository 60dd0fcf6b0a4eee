"""The budget of one render (or compile): its clock, its iterations, what it has built.

The budget under way lives in a context variable, so concurrent renders in threads are
independent; every hook of the sandbox calls :func:`tick`, and everything that builds text or
lists charges it here. The limits that do not depend on the library's settings are here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from jinja2.exceptions import TemplateRuntimeError

__all__ = [
    "CHECK_EVERY",
    "COMPILE_TIMEOUT",
    "MAX_LOOP_ITERATIONS",
    "MAX_RANGE",
    "MAX_SOURCE_CHARS",
    "RenderBudget",
    "TemplateLimitError",
    "charge_built",
    "checked_iter",
    "current_budget",
    "need",
    "tick",
    "value_limit",
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

CHECK_EVERY = 1024  # items between deadline checks in a long walk or loop
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


current_budget: ContextVar[RenderBudget | None] = ContextVar(
    "mailroom_template_budget", default=None
)


def tick() -> RenderBudget | None:
    """A template step: the budget under way (``None`` outside a bounded render or compile),
    its clock read every few steps."""
    budget = current_budget.get()
    if budget is not None:
        budget.tick()
    return budget


def need(size: int) -> None:
    """Refuse a result of ``size``: against the budget of the render (or compile) under way,
    else (a template rendered with a plain ``render()``) against a fixed sanity limit."""
    budget = tick()
    if budget is not None:
        budget.need(size)
    elif size > MAX_SOURCE_CHARS * 10:
        raise TemplateLimitError(f"builds more than {MAX_SOURCE_CHARS * 10:,} characters")


def charge_built(result: object) -> None:
    """Count a text or container the template built on the way (see
    :meth:`RenderBudget.charge_built`)."""
    budget = current_budget.get()
    if budget is None:
        return
    if isinstance(result, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        budget.charge_built(len(result))


def value_limit() -> int:
    """The most characters a value may still weigh."""
    budget = current_budget.get()
    return budget.remaining if budget is not None else MAX_SOURCE_CHARS * 10


def checked_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate, checking the deadline and counting iterations against the budget."""
    budget = current_budget.get()
    if budget is None:
        yield from iterable
        return
    iterator = iter(iterable)
    while True:
        chunk = list(islice(iterator, CHECK_EVERY))
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

"""The bounded Jinja environment: each hook where a template gets control checks it."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from functools import update_wrapper
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from markupsafe import Markup

from mailroom.compose.sandbox.budget import (
    COMPILE_TIMEOUT,
    MAX_SOURCE_CHARS,
    RenderBudget,
    TemplateLimitError,
    charge_built,
    current_budget,
    tick,
)
from mailroom.compose.sandbox.filters import bounded_filter, bounded_pprint, check_method
from mailroom.compose.sandbox.formatting import BoundedEscapeFormatter, BoundedFormatter
from mailroom.compose.sandbox.growing import bounded_sum
from mailroom.compose.sandbox.operators import ARITHMETIC, check_binop
from mailroom.compose.sandbox.rewrite import BoundedCodeGenerator, CompileDeadline, rewrite
from mailroom.compose.sandbox.runtime import (
    BUILD,
    CHARGE,
    CONCAT,
    LOOP,
    SLICE,
    bounded_lipsum,
    bounded_range,
    build_filter,
    charge_filter,
    concat_filter,
    finalize,
    loop_filter,
    slice_filter,
)
from mailroom.compose.sandbox.weight import builds, check_built, dict_weight

__all__ = ["BoundedSandbox"]


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the bounds described in :mod:`mailroom.compose.sandbox`.

    Render with :meth:`render_bounded`; a render outside it has no time or size budget (the
    size checks before building still hold).
    """

    intercepted_binops = ARITHMETIC
    code_generator_class = BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        extensions = [*options.pop("extensions", ()), CompileDeadline]
        super().__init__(optimized=False, finalize=finalize, extensions=extensions, **options)
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = bounded_lipsum
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[LOOP] = loop_filter
        self.filters[CONCAT] = concat_filter
        self.filters[CHARGE] = charge_filter
        self.filters[SLICE] = slice_filter
        self.filters[BUILD] = build_filter
        self.filters["sum"] = bounded_filter("sum", bounded_sum)
        self.filters["pprint"] = bounded_filter("pprint", bounded_pprint)

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Add a filter, bounded like the built-in ones."""
        self.filters[name] = bounded_filter(name, func)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Jinja's one place where a template's tree exists before it is compiled; overriding
        # it covers from_string, get_template, include, import and extends alike.
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateLimitError(
                f"is {len(source):,} characters long; the most is {MAX_SOURCE_CHARS:,}"
            )
        return rewrite(super()._parse(source, name, filename))

    # Each hook below is a point where the template gets control: check the deadline there.

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        args = check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        charge_built(result)
        if builds(__obj):
            # dict(a=x, b=x), namespace(...), {}.fromkeys(keys, x)
            check_built(result, dict_weight(__obj, args, kwargs))
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        measured = check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        charge_built(result)
        if measured is not None:
            check_built(result, measured)
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
            formatter = BoundedEscapeFormatter(self, escape=f_self.escape)
        else:
            formatter = BoundedFormatter(self)

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
        token = current_budget.set(RenderBudget(COMPILE_TIMEOUT, max_chars, "compile"))
        try:
            return self.from_string(source)
        finally:
            current_budget.reset(token)

    def render_bounded(
        self, template: jinja2.Template, context: Mapping[str, Any], budget: RenderBudget
    ) -> str:
        """Render ``template`` within ``budget``, output counted as it is produced."""
        token = current_budget.set(budget)
        try:
            return str(template.render(context))
        finally:
            current_budget.reset(token)

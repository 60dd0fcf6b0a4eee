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
  it (:func:`.weight.measure`): that is also what hashing or comparing it walks. ``*`` and ``+`` on
  sequences, literals, calls and filters refuse a result over the budget, so ``(t,) * 100``
  nested five deep (short to build, 100**5 items to hash) is refused where it is built, and
  printing, ``|string`` or ``|pprint`` are refused from the weight, before Python makes the
  string.

Every refusal raises :class:`TemplateLimitError`; the template library turns it into a
:class:`~mailroom.errors.TemplateError` naming the template.

The modules, lowest first: ``budget`` (the render budget and its accounting), ``weight``
(what a value weighs), ``formatting`` (``%`` and ``str.format``), ``operators`` (integer and
sequence arithmetic), ``growing`` (``|sum`` of lists), ``filters`` (the built-in filters and
string methods), ``runtime`` (what the rewritten template calls), ``rewrite`` (the AST
rewrite and compile deadline), ``environment`` (:class:`BoundedSandbox`).
"""

from __future__ import annotations

from mailroom.compose.sandbox.budget import (
    COMPILE_TIMEOUT,
    MAX_LOOP_ITERATIONS,
    MAX_RANGE,
    MAX_SOURCE_CHARS,
    RenderBudget,
    TemplateLimitError,
)
from mailroom.compose.sandbox.environment import BoundedSandbox

__all__ = [
    "COMPILE_TIMEOUT",
    "MAX_LOOP_ITERATIONS",
    "MAX_RANGE",
    "MAX_SOURCE_CHARS",
    "BoundedSandbox",
    "RenderBudget",
    "TemplateLimitError",
]

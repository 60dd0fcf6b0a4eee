"""The process's notifier, on the outbox ``mailroom.configure`` set up, and :func:`notify`,
the module-level call that uses it."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from mailroom.notifications.notifier import Notifier
from mailroom.notifications.results import NotifyResult

__all__ = ["notify"]

_P = ParamSpec("_P")

_notifier_lock = threading.Lock()
_notifier: Notifier | None = None


def _default_notifier() -> Notifier:
    global _notifier  # noqa: PLW0603 - one per process, rebuilt when the outbox changes
    # At call time: the process's outbox is configured in sending, a layer above this one.
    from mailroom.sending import default_outbox  # noqa: PLC0415

    outbox = default_outbox()
    with _notifier_lock:
        if _notifier is None or _notifier.outbox is not outbox:
            _notifier = Notifier(outbox)
        return _notifier


def _on_default_notifier(
    method: Callable[Concatenate[Notifier, _P], NotifyResult],
) -> Callable[_P, NotifyResult]:
    """``method`` as a function of this module, called on :func:`_default_notifier`: the
    same parameters and documentation, written once."""

    def call(*args: _P.args, **kwargs: _P.kwargs) -> NotifyResult:
        return method(_default_notifier(), *args, **kwargs)

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    signature = inspect.signature(method)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]  # without self
    )
    return call


notify = _on_default_notifier(Notifier.notify)

"""Where a problem found in the settings goes: raised at once (:func:`load_settings`), or kept
with the others in a :class:`SettingsReport` (:func:`load_settings_report`), for the commands
an operator runs to find a broken setting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mailroom.config.model import Settings
from mailroom.errors import SettingsError

__all__ = ["Problems", "SettingsReport", "attempt"]

_T = TypeVar("_T")


class Problems:
    """Where a failed check goes: raised at once, or kept so that every error can be shown at
    the end.

    Callers hand an error over *outside* their ``except`` blocks, so the exception raised
    does not keep (as its ``__context__``) a parser's error that may quote a secret.
    """

    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self.errors: list[SettingsError] = []

    def add(self, error: SettingsError) -> None:
        if not self.keep:
            raise error
        self.errors.append(error)


def attempt(problems: Problems, action: Callable[[], _T]) -> _T | None:
    """``action()``, or None with its :class:`SettingsError` handed to ``problems``."""
    try:
        return action()
    except SettingsError as exc:
        failure = exc
    problems.add(failure)  # outside the except block: see Problems
    return None


@dataclass(frozen=True)
class SettingsReport:
    """Every setting and where it came from, with every problem found, for the commands that
    diagnose a broken configuration (``config show``, ``status``) and must not stop at it."""

    settings: Settings
    """The settings; a value that was refused is left at its default (see ``rejected``)."""
    rejected: Mapping[str, Any]
    """The raw values refused by type validation, by setting (secrets masked)."""
    errors: tuple[SettingsError, ...]

    def usable(self, name: str) -> bool:
        """Whether ``settings.<name>`` is the value the operator meant: no error names it and
        the settings file, which could have set it, was read."""
        refused = {error.setting for error in self.errors}
        return name not in refused and "MAILROOM_CONFIG" not in refused

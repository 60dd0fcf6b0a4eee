"""The environment as a settings layer: each setting under its own name, and a warning for a
variable that is a near miss of one (``EMAIL_HOST_PASWORD``), which would be silently ignored."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from mailroom.config.model import SETTING_NAMES

__all__ = ["OTHER_VARIABLES", "first_notice", "misspelt_variables", "read_environment"]

OTHER_VARIABLES = ("EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
"""Environment variables Mailroom reads besides the settings themselves."""

# The misspelling warnings already logged: once per process is enough.
_warned_variables: set[str] = set()


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings (and ``EMAIL_URL``) set in ``environ``; an empty value sets nothing."""
    names = (*SETTING_NAMES, "EMAIL_URL")
    return {name: environ[name] for name in names if environ.get(name, "") != ""}


def misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``EMAIL_*`` or ``MAILROOM_*`` variable that is close to a name
    Mailroom reads but is not one (``EMAIL_HOST_PASWORD``): otherwise it is silently ignored.

    Only near misses are named; other programs' ``EMAIL_*`` variables are theirs. The value is
    never shown: the variable may well be a password.
    """
    known = (*SETTING_NAMES, *OTHER_VARIABLES)
    found: list[str] = []
    for name in environ:
        if not name.upper().startswith(("EMAIL_", "MAILROOM_")) or name in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.8)
        if close:
            found.append(
                f"environment variable {name} is not a Mailroom setting and is ignored; "
                f"did you mean {close[0]}?"
            )
    return found


def first_notice(notice: str) -> bool:
    """Whether ``notice`` is new to this process (and so is to be logged)."""
    if notice in _warned_variables:
        return False
    _warned_variables.add(notice)
    return True

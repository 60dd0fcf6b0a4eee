"""Value parsers: the text forms a setting may be written in (environment variables are all
text), turned into the values the model holds, and the "did you mean" hint for a near miss."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from email.utils import getaddresses
from typing import Any

from mailroom.errors import SettingsError

__all__ = ["address_list", "name_list", "parse_rate_limits", "path_list", "suggest"]


def suggest(given: str, known: Sequence[str]) -> str:
    """``"; did you mean NAME?"`` for the known name closest to ``given``, or ``""``."""
    close = difflib.get_close_matches(given.upper(), [k.upper() for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def address_list(value: Any) -> Any:
    """``"Ada <ada@x>, bob@y"`` (environment), a list of addresses, or Django's
    ``[("Ada", "ada@x"), ...]`` pairs → a tuple of address strings."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(
            f"{name} <{addr}>" if name else addr for name, addr in getaddresses([value]) if addr
        )
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 2:  # Django's (name, address)
                name, addr = item
                out.append(f"{name} <{addr}>" if name else str(addr))
            else:
                out.append(item)
        return tuple(out)
    return value


def path_list(value: Any) -> Any:
    """``"dir1:dir2"`` (``os.pathsep``-separated, like ``PATH``) or a list → paths."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part for part in value.split(os.pathsep) if part)
    return value


def name_list(value: Any) -> Any:
    """``"bulk, digest"`` (comma-separated, as an environment variable) or a list → names."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def parse_rate_limits(text: str) -> list[tuple[int, float]]:
    """``"10/s, 100/day"`` → ``[(10, 1.0), (100, 86400.0)]`` (count, window in seconds)."""
    limits: list[tuple[int, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        count, _, unit = part.partition("/")
        window = _RATE_UNITS.get(unit.strip().lower())
        if not count.strip().isdigit() or int(count) < 1 or window is None:
            raise SettingsError(
                "EMAIL_RATE_LIMIT",
                f"{part!r} is not a rate; write N/unit with unit s, m, h or day, "
                "several separated by commas (e.g. '10/s, 100/day')",
            )
        limits.append((int(count), window))
    return limits

"""Who a campaign goes to: a mailing list (``list:<name>``) or an audience the application
registers (``app:<name>``), such as Open edX's "everyone enrolled in this course".

An application's audience is a function returning one page of recipients after a key, in
the order of that key (a user id, a join date and id as text): the fan-out keeps the last
key of each page it has put in the ledger, so a restart goes on after it and nothing is held
in memory but one page. Keys must be strings that sort as the pages do, and must not change
while a campaign is sending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailroom.errors import MessageError

__all__ = [
    "APP_PREFIX",
    "LIST_PREFIX",
    "AudienceMember",
    "AudiencePages",
    "audience_pages",
    "check_audience",
    "register_audience",
]

LIST_PREFIX = "list:"
APP_PREFIX = "app:"
_NAME_MAX = 100


@dataclass(frozen=True, slots=True)
class AudienceMember:
    """One recipient an application's audience yields."""

    key: str
    """Its place in the audience's order; the fan-out's checkpoint."""
    email: str
    name: str | None = None
    attributes: Mapping[str, Any] | None = None
    """Merge fields: ``{{ contact.<key> }}`` in the campaign."""


AudiencePages = Callable[[str | None, int], Sequence[AudienceMember]]
"""``pages(after_key, limit)``: at most ``limit`` members whose key comes after
``after_key`` (``None``: from the start), in key order; fewer than ``limit`` means the end."""

_registered: dict[str, AudiencePages] = {}
_lock = threading.Lock()


def register_audience(name: str, pages: AudiencePages) -> None:
    """Make ``app:<name>`` an audience campaigns can be sent to, in this process (a worker
    that fans a campaign out must have registered it: the application's own start-up code,
    its Celery worker, its Django ``AppConfig.ready``)."""
    _check_name(name)
    with _lock:
        _registered[name] = pages


def audience_pages(audience: str) -> AudiencePages | None:
    """The registered pages of ``app:<name>``; ``None`` when this process has none."""
    with _lock:
        return _registered.get(audience.removeprefix(APP_PREFIX))


def check_audience(audience: str) -> str:
    """``audience`` itself if it is ``list:<name>`` or ``app:<name>``; else
    :class:`~mailroom.errors.MessageError`."""
    for prefix in (LIST_PREFIX, APP_PREFIX):
        if audience.startswith(prefix):
            _check_name(audience.removeprefix(prefix))
            return audience
    raise MessageError(
        "audience", f"{audience!r} is neither a mailing list (list:<name>) nor an app audience"
    )


def _check_name(name: str) -> None:
    if not name or len(name) > _NAME_MAX or name != name.strip():
        raise MessageError("audience", f"a name of 1 to {_NAME_MAX} characters, not {name!r}")

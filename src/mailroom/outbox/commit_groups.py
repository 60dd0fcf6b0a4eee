"""Taking waiting work in groups, for the threads that commit many callers' rows at once (the
HTTP API's single sends, the SMTP submission port's messages): one commit for all the work
that arrived while the previous commit ran, so a commit's fixed cost is shared."""

from __future__ import annotations

import queue
from typing import TypeVar

__all__ = ["take_group"]

Item = TypeVar("Item")


def take_group(
    waiting: queue.SimpleQueue[Item | None], max_group: int
) -> tuple[list[Item], bool] | None:
    """The next group: the first item (waiting for it), then up to ``max_group - 1`` more that
    are already there, without waiting. ``None`` (the end mark a closing owner puts) ends
    it: ``None`` when the end mark comes first, otherwise the group and whether the end mark
    came after it (commit the group, then stop)."""
    first = waiting.get()
    if first is None:
        return None
    group = [first]
    while len(group) < max_group:
        try:
            more = waiting.get_nowait()
        except queue.Empty:
            break
        if more is None:
            return group, True
        group.append(more)
    return group, False

"""Taking waiting work in groups: what arrived is taken at once up to the group's size, and
the end mark ends it, before or after a group."""

from __future__ import annotations

import queue
import threading

from mailroom.outbox.commit_groups import take_group


def _waiting(*items: int | None) -> queue.SimpleQueue[int | None]:
    waiting: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for item in items:
        waiting.put(item)
    return waiting


def test_what_is_waiting_is_taken_up_to_the_group_size() -> None:
    waiting = _waiting(1, 2, 3, 4, 5)
    assert take_group(waiting, 3) == ([1, 2, 3], False)
    assert take_group(waiting, 3) == ([4, 5], False)


def test_the_end_mark_ends_after_the_group_before_it() -> None:
    waiting = _waiting(1, 2, None, 3)
    assert take_group(waiting, 10) == ([1, 2], True)


def test_the_end_mark_first_ends_at_once() -> None:
    assert take_group(_waiting(None, 1), 10) is None


def test_the_first_item_is_waited_for_and_no_more() -> None:
    waiting: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    threading.Timer(0.05, waiting.put, args=(7,)).start()
    assert take_group(waiting, 10) == ([7], False)

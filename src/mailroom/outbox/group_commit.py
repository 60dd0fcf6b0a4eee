"""Group commit: single sends that arrive together are committed together, in one
transaction and one sync to disk.

With the durable commit kept (SQLite's ``synchronous=FULL``), each commit waits for the disk,
and on a busy disk that wait, not the work, is what a send costs: one at a time, sends queue
behind each other's syncs. Here one writer thread takes every send waiting, prepares each
(whatever the caller's ``prepare`` does: authenticate, validate, compose), commits those that
prepared in one transaction, and only then answers each its id, or its own error: an item at
fault fails alone, a database fault fails the group. Under light load a group is one send,
committed at once; the heavier the load, the more each sync carries.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from mailroom.errors import MessageError
from mailroom.outbox.batch_items import BatchItem
from mailroom.outbox.commit_groups import take_group
from mailroom.outbox.store import Outbox

__all__ = ["GroupCommit"]

Prepare = Callable[[], BatchItem]
_MAX_GROUP = 500


class GroupCommit:
    """A writer thread committing the sends :meth:`submit` hands it, in groups."""

    def __init__(self, outbox: Outbox, *, max_group: int = _MAX_GROUP) -> None:
        self.outbox = outbox
        self.max_group = max_group
        self._waiting: queue.SimpleQueue[tuple[Prepare, Future[int]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, prepare: Prepare) -> Future[int]:
        """The id of the message ``prepare()`` makes, once committed (or the exception it,
        or the commit, raised). ``prepare`` runs in the writer thread: it may block."""
        future: Future[int] = Future()
        self._waiting.put((prepare, future))
        self._start()
        return future

    def close(self) -> None:
        """Commit what is waiting, then stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._waiting.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                # A daemon: a process that exits without close() is not held up by it; a send
                # in flight is then not committed, and so was never acknowledged.
                self._thread = threading.Thread(
                    target=self._run, name="mailroom-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            taken = take_group(self._waiting, self.max_group)
            if taken is None:
                return
            group, stop = taken
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Prepare, Future[int]]]) -> None:
        items: list[BatchItem] = []
        waiting: list[Future[int]] = []
        for prepare, future in group:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                items.append(prepare())
            except Exception as exc:  # the caller's to handle, not ours
                future.set_exception(exc)
                continue
            waiting.append(future)
        if not items:
            return
        try:
            results = self.outbox.send_batch_each(items)
        except Exception as exc:  # every caller of the group gets it
            for future in waiting:
                future.set_exception(exc)
            return
        for future, result in zip(waiting, results, strict=True):
            if isinstance(result, MessageError):
                future.set_exception(result)
            else:
                future.set_result(result)

"""Celery workers, Celery Beat and ``mailroom worker`` as real processes, always stopped.

Each process runs in a session of its own, with its output in a file (a pipe nobody reads
would fill and stall it). At the end, whatever still runs gets SIGTERM (a warm shutdown for
Celery: the running drain finishes; the worker's graceful stop), and the whole session SIGKILL
after :data:`STOP_WAIT` seconds, so no prefork child outlives a failed test.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STOP_WAIT = 20.0
"""Seconds a process gets to end after SIGTERM: a drain's grace (WORKER_SHUTDOWN_GRACE) and
its last writes fit in it."""

TESTS = Path(__file__).resolve().parents[1]

_SUCCEEDED = re.compile(r"Task mailroom\.drain\[[^\]]+\] succeeded in [\d.e-]+s: (\{.*\})$", re.M)


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Processes:
    """The processes of one test; :meth:`stop_all` ends them (the fixture calls it)."""

    folder: Path
    env: dict[str, str]
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, args: list[str]) -> Started:
        log = self.folder / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Started(name, process, log)
        self.started.append(started)
        return started

    def celery_worker(self, name: str, queue: str, *, concurrency: int = 1) -> Started:
        return self.start(
            name,
            [
                *celery("worker"),
                "--loglevel=INFO",
                f"--queues={queue}",
                f"--hostname={name}-{queue}@%h",
                f"--concurrency={concurrency}",
                "--pool=prefork",
                # Nothing to learn from other workers; each of these is a round trip at start.
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
        )

    def celery_beat(self, name: str = "beat") -> Started:
        return self.start(
            name,
            [
                *celery("beat"),
                "--loglevel=INFO",
                f"--schedule={self.folder / 'beat-schedule'}",
                f"--pidfile={self.folder / 'beat.pid'}",
            ],
        )

    def mailroom_worker(self, name: str = "mailroom-worker") -> Started:
        return self.start(name, [sys.executable, "-m", "mailroom", "worker"])

    def check_running(self) -> None:
        """Fail with its output if a process has ended."""
        for started in self.started:
            code = started.process.poll()
            assert code is None, f"{started.name} ended ({code}):\n{started.output()}"

    def stop(self, started: Started) -> int:
        """SIGTERM, then SIGKILL to its whole session after STOP_WAIT; its exit status."""
        process = started.process
        if process.poll() is None:
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(STOP_WAIT)
        # Prefork children (and anything else in the session) go too, however it ended.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(STOP_WAIT)

    def stop_all(self) -> None:
        for started in reversed(self.started):
            self.stop(started)


def celery(command: str) -> list[str]:
    return [sys.executable, "-m", "celery", "--app=support.celery_app", command]


def drain_results(log: str) -> list[dict[str, Any]]:
    """The return value of every drain a worker's log reports (Celery logs it at INFO)."""
    found = [ast.literal_eval(match) for match in _SUCCEEDED.findall(log)]
    assert all(isinstance(result, dict) for result in found)
    return found


def wait_until(condition: Any, timeout: float, what: str, check: Any = None) -> None:
    """Poll ``condition()`` every 50 ms until true; ``check()`` runs on each round (to fail
    early when a process ended)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if check is not None:
            check()
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.05)

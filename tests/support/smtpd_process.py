"""A real ``mailroom smtpd --port 0`` process, for tests that submit to it over SMTP.

    with SmtpdProcess({"DATABASE_URL": url}, cwd=tmp_path) as smtpd:
        smtplib.SMTP("127.0.0.1", smtpd.port)

Entering waits until it prints where it listens; leaving (or :meth:`SmtpdProcess.stop`) sends
SIGTERM and waits a bounded time, then kills it. Its output is read all along, so a chatty
process never blocks on a full pipe; :attr:`output` holds what it said.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from support.service import service_env

__all__ = ["SmtpdProcess", "smtpd_args"]

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def smtpd_args(*extra: str) -> list[str]:
    """``python -m mailroom smtpd --port 0 [extra]``."""
    return [sys.executable, "-m", "mailroom", "smtpd", "--port", "0", *extra]


class SmtpdProcess:
    """``mailroom smtpd --port 0`` as a subprocess; ``.port`` is where it listens."""

    def __init__(
        self, settings_env: dict[str, str], *, cwd: Path, ready_timeout: float = 30.0
    ) -> None:
        self.settings_env = settings_env
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._output: list[str] = []
        self._readers: list[threading.Thread] = []

    @property
    def output(self) -> str:
        return "".join(self._output)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> SmtpdProcess:
        self.process = subprocess.Popen(
            smtpd_args(),
            env=service_env(self.settings_env),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
            reader.start()
            self._readers.append(reader)
        deadline = time.monotonic() + self.ready_timeout
        while not self.port:
            found = _LISTENING.search(self.output)
            if found:
                self.port = int(found.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"mailroom smtpd did not start:\n{self.output}")
            time.sleep(0.02)
        return self

    def _read(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self._output.append(line.decode("utf-8", "replace"))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then its exit status (killed if it does not end within ``timeout``)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"mailroom smtpd did not stop within {timeout} s:\n{self.output}"
                ) from None
        self._join()
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._join()

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(5)

    def __enter__(self) -> SmtpdProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            if kind is None:
                self.stop()
            else:
                self.kill()

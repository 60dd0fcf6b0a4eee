"""A real ``mailroom serve`` process on a free port, for tests that talk to it over HTTP.

    with ServiceProcess({"DATABASE_URL": url, "SECRET_KEY": key}, cwd=tmp_path) as service:
        httpx.get(f"{service.url}/healthz")
    assert service.returncode == 0

The process gets this environment less every Mailroom setting (``EMAIL_*``, ``MAILROOM_*``,
``DATABASE_URL``, ...) plus ``settings_env``; it is started as ``python -m mailroom
*global_args serve --port 0 *args`` in ``cwd`` (default: a new temporary folder, removed
afterwards, so a default ``sqlite:///mailroom.db`` never lands in the repository);
``global_args=["-v"]`` shows uvicorn's access log on its standard error.
Entering waits until ``/healthz`` answers 200; leaving (or :meth:`ServiceProcess.stop`)
sends SIGTERM and waits a bounded time, then kills it. The output is read all along, so
a chatty process never blocks on a full pipe.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from mailroom.config import SETTING_NAMES

__all__ = ["ServiceProcess", "serve_args", "service_env"]

_URL_LINE = re.compile(r"listening on (http://\S+)")


def service_env(settings_env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Mailroom setting, plus ``settings_env``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES and not name.startswith(("EMAIL_", "MAILROOM_"))
    }
    return {**inherited, **settings_env}


def serve_args(*extra: str, global_args: Sequence[str] = ()) -> list[str]:
    """``python -m mailroom [global_args] serve --port 0 [extra]``."""
    return [sys.executable, "-m", "mailroom", *global_args, "serve", "--port", "0", *extra]


class ServiceProcess:
    """``mailroom serve --port 0`` as a subprocess; ``.url`` is its base URL (no slash)."""

    def __init__(
        self,
        settings_env: dict[str, str],
        args: Sequence[str] = (),
        *,
        cwd: Path | None = None,
        global_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.settings_env = settings_env
        self.args = list(args)
        self._own_folder: tempfile.TemporaryDirectory[str] | None = None
        if cwd is None:
            self._own_folder = tempfile.TemporaryDirectory(prefix="mailroom-serve-")
            cwd = Path(self._own_folder.name)
        self.cwd = cwd
        self.global_args = list(global_args)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers: list[threading.Thread] = []

    # -- what it said ------------------------------------------------------------------

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    @property
    def output(self) -> str:
        """Everything it printed so far: standard output, then standard error."""
        return self.stdout + self.stderr

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    # -- its life ----------------------------------------------------------------------

    def start(self) -> ServiceProcess:
        """Start it and wait until it serves; raises AssertionError (with its output) if it
        ends or does not answer ``/healthz`` within ``ready_timeout`` seconds."""
        self.process = subprocess.Popen(
            serve_args(*self.args, global_args=self.global_args),
            env=service_env(self.settings_env),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        for stream, sink in (
            (self.process.stdout, self._stdout),
            (self.process.stderr, self._stderr),
        ):
            reader = threading.Thread(target=_read, args=(stream, sink), daemon=True)
            reader.start()
            self._readers.append(reader)
        try:
            self._wait_ready(time.monotonic() + self.ready_timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        while not self.url:
            match = _URL_LINE.search(self.stdout)
            if match:
                self.url = match.group(1)
                break
            self._check_alive(deadline, "print its URL")
            time.sleep(0.05)
        with httpx.Client(timeout=2.0) as client:
            while True:
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                self._check_alive(deadline, "answer /healthz")
                time.sleep(0.05)

    def _check_alive(self, deadline: float, what: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            self._join_readers()
            raise AssertionError(
                f"mailroom serve ended (exit {self.process.returncode}) before it could {what}:"
                f"\n{self.output}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"mailroom serve did not {what} within {self.ready_timeout} s:\n{self.output}"
            )

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end (``subprocess.TimeoutExpired`` past ``timeout``); its status."""
        assert self.process is not None
        code = self.process.wait(timeout if timeout is not None else self.stop_timeout)
        self._join_readers()
        return code

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, then wait up to ``timeout`` (``stop_timeout``) seconds; kill it if it is
        still running then and raise AssertionError. Returns its exit status."""
        assert self.process is not None
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"mailroom serve did not stop within {timeout or self.stop_timeout} s of "
                f"SIGTERM; killed:\n{self.output}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._join_readers()

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(5.0)
        if self._own_folder is not None and self.returncode is not None:
            self._own_folder.cleanup()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.returncode is not None or self.process is None:
            self._join_readers()
            return
        if exc_type is not None:  # the test failed already: do not hide it behind a stop error
            self.kill()
            return
        self.stop()


def _read(stream: IO[bytes], sink: list[str]) -> None:
    for line in iter(stream.readline, b""):
        sink.append(line.decode("utf-8", "replace"))
    stream.close()

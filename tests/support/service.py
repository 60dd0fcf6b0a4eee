"""A real ``mailroom serve`` process on a free port, for tests that talk to it over HTTP.

    with ServiceProcess({"DATABASE_URL": url, "SECRET_KEY": key}, cwd=tmp_path) as service:
        httpx.get(f"{service.url}/healthz")
    assert service.returncode == 0

Every secret it was started with (``SECRET_KEY`` and ``EMAIL_HOST_PASSWORD`` from
``settings_env`` or from the settings file it names in ``MAILROOM_CONFIG``), and every API
key registered with its :class:`~support.api_client.SecretWatch` (``service.watch.add(key)``),
must stay out of what it says: its whole output is checked when it stops, and
:meth:`ServiceProcess.client` gives an httpx client whose every answer is checked.

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
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from mailroom.config import SETTING_NAMES
from support.api_client import SecretWatch, api_client

__all__ = ["SECRET_SETTINGS", "ServiceProcess", "secrets_of", "serve_args", "service_env"]

SECRET_SETTINGS = ("SECRET_KEY", "EMAIL_HOST_PASSWORD")
"""The settings whose values no answer or output of the service may contain."""

_URL_LINE = re.compile(r"listening on (http://\S+)")


def service_env(settings_env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Mailroom setting, plus ``settings_env``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES and not name.startswith(("EMAIL_", "MAILROOM_"))
    }
    return {**inherited, **settings_env}


def secrets_of(settings_env: dict[str, str], cwd: Path | None = None) -> list[str]:
    """The secret settings' values in ``settings_env`` and in the settings file it names
    (``MAILROOM_CONFIG``, relative to ``cwd``), as the service would read them."""
    found = [settings_env[name] for name in SECRET_SETTINGS if settings_env.get(name)]
    config = settings_env.get("MAILROOM_CONFIG")
    if config:
        path = Path(config) if cwd is None else cwd / config
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            table = {}  # a test of a bad settings file: the service says so, nothing to hide
        found += [v for n in SECRET_SETTINGS if isinstance(v := table.get(n), str) and v]
    return found


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
        watch: SecretWatch | None = None,
    ) -> None:
        self.settings_env = settings_env
        self.args = list(args)
        self._own_folder: tempfile.TemporaryDirectory[str] | None = None
        if cwd is None:
            self._own_folder = tempfile.TemporaryDirectory(prefix="mailroom-serve-")
            cwd = Path(self._own_folder.name)
        self.cwd = cwd
        self.watch = watch if watch is not None else SecretWatch()
        """What no answer or output may contain; its settings' secrets are added to it."""
        for secret in secrets_of(settings_env, cwd):
            if secret not in self.watch.secrets:
                self.watch.add(secret)
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

    def check_output(self) -> None:
        """Fail (AssertionError) if anything it printed holds one of the watched secrets."""
        self.watch.check_text(self.output, "the output of mailroom serve")

    def client(self, key: str | None = None, **options: Any) -> httpx.Client:
        """An httpx client on its URL whose every answer is checked for the watched secrets;
        with ``key``, it sends ``Authorization: Bearer key``; ``options`` go to httpx."""
        return api_client(self.url, self.watch, key, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        """One checked ``GET`` of ``path`` (``options``: httpx request arguments)."""
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        """One checked ``POST`` of ``path`` (``options``: httpx request arguments)."""
        return self.request("POST", path, **options)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request on a client of :meth:`client`; ``timeout`` and ``follow_redirects``
        go to the client, the rest to the request."""
        client_options = {
            k: options.pop(k) for k in ("timeout", "follow_redirects") if k in options
        }
        with self.client(**client_options) as client:
            return client.request(method, path, **options)

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
        with self.client(timeout=2.0) as client:  # its first answer is checked too
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
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
        self.check_output()
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
            if exc_type is None and self.process is not None:
                self.check_output()
            return
        if exc_type is not None:  # the test failed already: do not hide it behind a stop error
            self.kill()
            return
        self.stop()


def _read(stream: IO[bytes], sink: list[str]) -> None:
    for line in iter(stream.readline, b""):
        sink.append(line.decode("utf-8", "replace"))
    stream.close()

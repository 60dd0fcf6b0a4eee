"""Postfix's smtp-sink and smtp-source, unpacked from Debian's package, never installed.

``apt-get download postfix`` fetches the .deb, ``dpkg -x`` unpacks it into
``bench/.cache/postfix/``; nothing is configured or started as a mail service. The two test
programs link against Postfix's own libraries, so they run with ``LD_LIBRARY_PATH`` pointed
at the unpacked ``usr/lib/postfix``.

Counting: ``smtp-sink -c`` writes ``sess=N quit=N mesg=N`` followed by a CR to its standard
output, and flushes it, each time a session ends, a QUIT is executed or a message's final
"." is received. The "." case is counted before the 250 reply goes out, so once a client has
its 250 the count already includes that message: the last ``mesg=`` in the file is exact.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from common import log

_COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)\r")
_SMTP_SOURCE_COUNTER = re.compile(rb"(\d+)\r")
_BACKLOG = 1024  # listen(2) queue: far more than the 32 sessions smtp-source opens


class BenchSetupError(RuntimeError):
    """A tool the benchmark needs could not be fetched or started."""


@dataclass(frozen=True)
class Postfix:
    """The unpacked package: paths to the two programs and the environment they need."""

    root: Path
    version: str

    @property
    def sink(self) -> Path:
        return self.root / "usr" / "sbin" / "smtp-sink"

    @property
    def source(self) -> Path:
        return self.root / "usr" / "sbin" / "smtp-source"

    @property
    def env(self) -> dict[str, str]:
        libdir = str(self.root / "usr" / "lib" / "postfix")
        previous = os.environ.get("LD_LIBRARY_PATH")
        return {**os.environ, "LD_LIBRARY_PATH": f"{libdir}:{previous}" if previous else libdir}


def apt_download(folder: Path, package: str = "postfix") -> Path:
    """Debian's ``package`` as a .deb in ``folder`` (``apt-get download``: nothing installed)."""

    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", "download", package],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )

    result = download()
    if result.returncode != 0 and os.geteuid() == 0:
        log("apt-get download failed; running apt-get update once and retrying")
        subprocess.run(
            ["apt-get", "update", "-qq"],
            capture_output=True,
            check=False,
        )
        result = download()
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise BenchSetupError(
            f"could not fetch Debian's {package} package with `apt-get download {package}`: "
            f"{(result.stderr or result.stdout).strip()[-500:]}"
        )
    return debs[-1]


def ensure_postfix(cache: Path) -> Postfix:
    """The unpacked postfix package under ``cache/postfix``, fetched on first use."""
    root = cache / "postfix"
    marker = root / "VERSION"
    if marker.exists() and (root / "usr" / "sbin" / "smtp-sink").exists():
        return Postfix(root, marker.read_text().strip())
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise BenchSetupError("apt-get and dpkg are needed to fetch Postfix's smtp-sink")
    cache.mkdir(parents=True, exist_ok=True)
    log(f"fetching Debian's postfix package into {root} (once)")
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        deb = apt_download(Path(scratch))
        unpacked = Path(scratch) / "root"
        subprocess.run(
            ["dpkg", "-x", str(deb), str(unpacked)],
            check=True,
            capture_output=True,
        )
        version = deb.name.removeprefix("postfix_").removesuffix(".deb")
        (unpacked / "VERSION").write_text(version + "\n")
        if root.exists():
            shutil.rmtree(root)
        unpacked.rename(root)
    return Postfix(root, version)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Sink:
    """One smtp-sink process on 127.0.0.1, counting what it accepts.

    Use as a context manager; :meth:`count` is the number of messages whose final "." it has
    received (and answered, or is answering, with 250).
    """

    def __init__(self, postfix: Postfix, workdir: Path) -> None:
        self.postfix = postfix
        self.workdir = workdir
        self.port = 0
        self._stdout = workdir / "smtp-sink.out"
        self._stderr = workdir / "smtp-sink.err"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Sink:
        command = [str(self.postfix.sink), "-c"]
        if os.geteuid() == 0:
            # smtp-sink refuses to run as root without a user to switch to after binding.
            command += ["-u", "nobody"]
        for _ in range(5):
            self.port = free_port()
            with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
                self._process = subprocess.Popen(
                    [*command, f"127.0.0.1:{self.port}", str(_BACKLOG)],
                    stdout=out,
                    stderr=err,
                    env=self.postfix.env,
                )
            if self._wait_listening():
                return self
            self.stop()
        raise BenchSetupError(f"smtp-sink did not start: {self._stderr.read_text()[-500:]}")

    def _wait_listening(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.recv(100)  # the 220 greeting: it really is smtp-sink answering
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def count(self) -> int:
        """Messages received so far, read from the tail of smtp-sink's counter output."""
        with self._stdout.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256))
            tail = fh.read()
        found = _COUNTERS.findall(tail)
        return int(found[-1][2]) if found else 0

    def wait_quiet(self, expected: int | None = None, settle: float = 0.3) -> int:
        """The count once it has stopped moving (or reached ``expected``)."""
        last, since = self.count(), time.monotonic()
        while time.monotonic() - since < settle:
            if expected is not None and last >= expected:
                break
            time.sleep(0.02)
            now = self.count()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class SourceRun:
    messages: int
    seconds: float
    sink_count: int
    source_count: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def run_smtp_source(
    postfix: Postfix, sink: Sink, *, messages: int, sessions: int = 32, length: int = 4000
) -> SourceRun:
    """``smtp-source -s 32 -d -m N -l 4000 -c`` against ``sink``, timed start to exit."""
    before = sink.count()
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        result = subprocess.run(
            [
                str(postfix.source),
                "-s",
                str(sessions),
                "-d",
                "-m",
                str(messages),
                "-l",
                str(length),
                "-c",
                f"127.0.0.1:{sink.port}",
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            env=postfix.env,
            check=False,
        )
        seconds = time.perf_counter() - started
        out.seek(0)
        counters = _SMTP_SOURCE_COUNTER.findall(out.read())
    if result.returncode != 0:
        raise BenchSetupError(f"smtp-source failed: {result.stderr.decode()[-500:]}")
    received = sink.wait_quiet(before + messages) - before
    return SourceRun(messages, seconds, received, int(counters[-1]) if counters else 0)

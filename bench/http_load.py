"""Load generators for the service benchmark: Debian's ``wrk`` for raw request rates, and an
open-loop Python client for latency at a fixed request rate.

``wrk`` and the LuaJIT library it links are fetched with ``apt-get download`` into
``bench/.cache/wrk`` and unpacked there (never installed), like Postfix's smtp-sink.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from common import log
from sink import BenchSetupError, apt_download

__all__ = ["OpenLoopResult", "Wrk", "WrkResult", "ensure_wrk", "open_loop_posts"]

_WRK_PACKAGES = ("wrk", "libluajit2-5.1-2")


@dataclass(frozen=True)
class Wrk:
    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "usr" / "bin" / "wrk"

    def env(self) -> dict[str, str]:
        libs = [str(p.parent) for p in self.root.rglob("libluajit*.so*")]
        previous = os.environ.get("LD_LIBRARY_PATH")
        path = ":".join(sorted(set(libs)) + ([previous] if previous else []))
        return {**os.environ, "LD_LIBRARY_PATH": path}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    per_second: float
    non_2xx: int
    errors: str
    p50_ms: float | None
    p99_ms: float | None


def ensure_wrk(cache: Path) -> Wrk:
    """The unpacked wrk under ``cache/wrk``, fetched on first use."""
    root = cache / "wrk"
    wrk = Wrk(root)
    if wrk.binary.exists():
        return wrk
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise BenchSetupError("apt-get and dpkg are needed to fetch wrk")
    cache.mkdir(parents=True, exist_ok=True)
    log(f"fetching Debian's wrk into {root} (once)")
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        unpacked = Path(scratch) / "root"
        for package in _WRK_PACKAGES:
            folder = Path(scratch) / package
            folder.mkdir()
            deb = apt_download(folder, package)
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
        if root.exists():
            shutil.rmtree(root)
        unpacked.rename(root)
    return wrk


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _rotation_script(paths: list[str], folder: Path) -> Path:
    """A wrk script that requests ``paths`` in turn, so each request is a different one."""
    quoted = ",".join(json.dumps(path) for path in paths)
    script = folder / "rotate.lua"
    script.write_text(
        f"local paths = {{{quoted}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        "  return wrk.format(nil, paths[i])\n"
        "end\n"
    )
    return script


def run_wrk(
    wrk: Wrk,
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    paths: list[str] | None = None,
) -> WrkResult:
    """``wrk --latency`` against ``url`` (or, given ``paths``, against each of them in turn on
    the same server); its figures, parsed."""
    with tempfile.TemporaryDirectory() as scratch:
        script = ["-s", str(_rotation_script(paths, Path(scratch)))] if paths else []
        return _wrk(
            wrk, url, seconds=seconds, connections=connections, threads=threads, script=script
        )


def _wrk(
    wrk: Wrk, url: str, *, seconds: int, connections: int, threads: int, script: list[str]
) -> WrkResult:
    result = subprocess.run(
        [
            str(wrk.binary),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            *script,
            url,
        ],
        env=wrk.env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    out = result.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rate is None:
        raise BenchSetupError(f"cannot read wrk's output:\n{out}\n{result.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2) + total.group(3)) / 1000.0,
        per_second=float(rate.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=errors.group(1).strip() if errors else "",
        p50_ms=_ms(p50.group(1)) if p50 else None,
        p99_ms=_ms(p99.group(1)) if p99 else None,
    )


@dataclass(frozen=True)
class OpenLoopResult:
    sent: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends prebuilt requests and reads answers with
    the least work: the status line and Content-Length, then the body skipped. A Python HTTP
    client spends more CPU per request than the server under test; this one does not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


async def _connect(host: str, port: int) -> _Connection:
    return _Connection(*await asyncio.open_connection(host, port))


async def _open_loop(
    url: str, headers: dict[str, str], bodies: list[bytes], rate: float
) -> OpenLoopResult:
    # Open loop: request n starts at start + n / rate whatever the earlier ones did, so a slow
    # answer shows as latency instead of quietly lowering the rate (coordinated omission).
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    requests = [
        (
            f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    idle: list[_Connection] = []
    latencies: list[float] = []
    failed = 0

    async def one(request: bytes, due: float) -> None:
        nonlocal failed
        connection = idle.pop() if idle else await _connect(host, port)
        try:
            status = await connection.exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            # The server closed an idle keep-alive connection (uvicorn does after 5 s): the
            # request never reached it, so it is sent again on a new connection.
            connection.writer.close()
            connection = await _connect(host, port)
            status = await connection.exchange(request)
        latencies.append((time.perf_counter() - due) * 1000.0)
        idle.append(connection)
        if status >= 300:
            failed += 1

    start = time.perf_counter()
    tasks = []
    for n, request in enumerate(requests):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for connection in idle:
        connection.writer.close()
    return OpenLoopResult(len(bodies), failed, elapsed, latencies)


def open_loop_posts(
    url: str, headers: dict[str, str], bodies: list[bytes], rate: float
) -> OpenLoopResult:
    """POST each body at ``rate`` requests per second, timing each answer (from its due time
    to the end of the answer: a request that starts late because the client is busy counts
    that delay too)."""
    return asyncio.run(_open_loop(url, headers, bodies, rate))

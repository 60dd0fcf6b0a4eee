"""The service's benchmark (issue #11): the HTTP API and the open pixel of a real
``mailroom serve`` process, on SQLite, with the durable commit kept.

    .venv/bin/python bench/service.py [--quick]

- **batch**: ``POST /api/v1/messages/batch`` with batches of 500 messages of about 4 KB,
  two clients at once; messages enqueued per second (target ≥ 10,000/s).
- **single**: ``POST /api/v1/messages`` at 200 requests per second, open loop; p50 and p99
  latency (target p99 < 25 ms).
- **pixel**: ``GET /trck/TOKEN`` with wrk (Debian's, fetched into bench/.cache/wrk), 50
  connections, 10,000 different tokens (of as many messages) in turn; requests per second
  (target ≥ 3,000/s), then the ``opened`` events recorded are counted in the database: every
  answered request must have its event.

The service runs with ``--no-worker``, so what is measured is the web side alone; the load
generators run on the same machine and take part of its cores (printed with the figures).
Progress goes to stderr; stdout gets a table, then one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from common import Figure, log
from http_load import ensure_wrk, open_loop_posts, run_wrk
from mailroom.config import load_settings
from mailroom.tracking.tokens import TrackingTokens

CACHE = Path(__file__).resolve().parent / ".cache"
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnop"  # noqa: S105 - a throwaway key
# ~4 KB with the headers, in lines of 75 characters as people write them.
_BODY = "\n".join(["All work and no play makes Jack a dull boy, said the line again. "] * 58)


def _env(workdir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "MAILROOM_"))}
    return {
        **keep,
        "DATABASE_URL": f"sqlite:///{workdir / 'mailroom.db'}",
        "SECRET_KEY": SECRET_KEY,
        "PUBLIC_BASE_URL": "https://mail.example.com",
        "MAILROOM_TRANSPORT": "null",
    }


def _mailroom(*args: str, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


class Service:
    """``mailroom serve --port 0 --no-worker`` in ``workdir``."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "serve", "--port", "0", "--no-worker"],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            self.stop()
            assert self.process.stderr is not None
            raise RuntimeError(f"mailroom serve did not start: {self.process.stderr.read()}")
        self.url = match.group(1).rstrip("/")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("mailroom serve never became healthy")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _message(n: int) -> dict[str, object]:
    return {
        "to": [f"user{n}@example.com"],
        "from_email": "Bench <bench@example.com>",
        "subject": f"Benchmark message {n}",
        "text": _BODY,
    }


async def _post_batches(url: str, headers: dict[str, str], bodies: list[bytes]) -> int:
    accepted = 0
    queue = list(bodies)

    async def client() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(timeout=120) as http:
            while queue:
                body = queue.pop()
                response = await http.post(url, content=body, headers=headers)
                response.raise_for_status()
                accepted += len(response.json()["ids"])

    await asyncio.gather(client(), client())
    return accepted


def bench_batch(service: Service, key: str, batches: int) -> Figure:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [
        json.dumps({"messages": [_message(b * 500 + i) for i in range(500)]}).encode()
        for b in range(batches)
    ]
    log(f"batch: {batches} batches of 500 (~{len(bodies[0]) // 1024} KiB each)")
    began = time.perf_counter()
    accepted = asyncio.run(_post_batches(f"{service.url}/api/v1/messages/batch", headers, bodies))
    elapsed = time.perf_counter() - began
    rate = accepted / elapsed
    return Figure(
        "service-batch",
        "enqueued",
        rate,
        "msg/s",
        target=">= 10000 msg/s",
        ok=rate >= 10_000,
        extra={"messages": accepted, "seconds": round(elapsed, 2)},
    )


def bench_single(service: Service, key: str, seconds: int) -> list[Figure]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [json.dumps(_message(10_000_000 + n)).encode() for n in range(200 * seconds)]
    log(f"single: {len(bodies)} POSTs at 200/s")
    result = open_loop_posts(f"{service.url}/api/v1/messages", headers, bodies, 200.0)
    p99 = result.percentile(0.99)
    extra = {"requests": result.sent, "failed": result.failed, "seconds": round(result.seconds, 2)}
    return [
        Figure("service-single", "p50", result.percentile(0.50), "ms", extra=extra),
        Figure("service-single", "p99", p99, "ms", target="< 25 ms", ok=p99 < 25, extra=extra),
    ]


def _open_tokens(database: Path, count: int) -> list[str]:
    """Pixel paths for ``count`` different messages: every request of a campaign's opens
    carries another token, so none of the server's per-token work is reused."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT message_id, recipients FROM mailroom_messages ORDER BY id LIMIT ?", (count,)
        ).fetchall()
    tokens = TrackingTokens(load_settings(environ={"SECRET_KEY": SECRET_KEY}))
    return [f"/trck/{tokens.open_token(mid, json.loads(rcpts)[0])}" for mid, rcpts in rows]


def _opened(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM mailroom_events WHERE type = 'opened'"
        ).fetchone()
    return int(count)


def _settle(count: Callable[[], int], expected: int) -> tuple[int, float]:
    """``count()`` once it reaches ``expected`` or stops growing for 3 s (30 s at most), and
    the seconds that took."""
    began = time.monotonic()
    last, last_change = count(), began
    while last < expected and time.monotonic() - last_change < 3 and time.monotonic() - began < 30:
        time.sleep(0.25)
        now = count()
        if now != last:
            last, last_change = now, time.monotonic()
    return last, time.monotonic() - began


def bench_pixel(service: Service, database: Path, seconds: int) -> Figure:
    wrk = ensure_wrk(CACHE)
    paths = _open_tokens(database, 10_000)
    before = _opened(database)
    log(f"pixel: wrk, 50 connections, {seconds} s, {len(paths)} different tokens in turn")
    result = run_wrk(wrk, service.url, seconds=seconds, connections=50, paths=paths)
    # The recorder writes buffered hits in batches, and may still be writing a backlog when
    # wrk stops; wrk does not count the requests it had in flight, so at least as many
    # events as counted requests must be there once the writing settles.
    recorded, settled_at = _settle(lambda: _opened(database) - before, result.requests)
    return Figure(
        "service-pixel",
        "requests",
        result.per_second,
        "req/s",
        target=">= 3000 req/s",
        ok=result.per_second >= 3000 and recorded >= result.requests,
        extra={
            "requests": result.requests,
            "tokens": len(paths),
            "events_recorded": recorded,
            "recorded_within_s": round(settled_at, 1),
            "non_2xx": result.non_2xx,
            "socket_errors": result.errors,
            "p99_ms": result.p99_ms,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, shorter runs")
    options = parser.parse_args()
    batches, single_seconds, pixel_seconds = (8, 5, 5) if options.quick else (40, 15, 10)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-service-") as scratch:
        workdir = Path(scratch)
        env = _env(workdir)
        service = Service(workdir, env)
        try:
            key = _mailroom(
                "apikeys",
                "create",
                "--name",
                "bench",
                "--scope",
                "admin",
                "--quiet",
                env=env,
                cwd=workdir,
            ).strip()
            figures.append(bench_batch(service, key, batches))
            figures.extend(bench_single(service, key, single_seconds))
            figures.append(bench_pixel(service, workdir / "mailroom.db", pixel_seconds))
        finally:
            service.stop()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores; load {load:.2f}; python {sys.version.split()[0]}")
    for figure in figures:
        value = "-" if figure.value is None else f"{figure.value:,.1f}"
        verdict = "" if figure.ok is None else ("ok" if figure.ok else "MISSED")
        target = figure.target or ""
        print(
            f"{figure.bench:16} {figure.metric:8} {value:>10} {figure.unit:6} {target:16} {verdict}"
        )
    for figure in figures:
        print(json.dumps(figure.as_json()))


if __name__ == "__main__":
    main()

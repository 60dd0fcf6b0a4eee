"""The scenarios of issue #4: reference, enqueue, end-to-end, worker memory.

Every delivery figure is checked against what smtp-sink counted, never only our own numbers.
"""

from __future__ import annotations

import os
import random
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Figure, log
from mailroom.config import SETTING_NAMES
from mailroom.message import build_envelope
from mailroom.outbox import database
from mailroom.outbox import store as outbox_store
from mailroom.outbox.store import Outbox
from sink import Postfix, Sink, run_smtp_source
from workload import (
    fill_backlog,
    message,
    postgres_database,
    remove_sqlite,
    settings_for,
    sqlite_url,
    status_counts,
)

E2E_TARGET_RATIO = 0.35
"""End-to-end on SQLite, as a fraction of smtp-source's rate."""
POSTGRES_WITHIN = 0.20
"""PostgreSQL end-to-end may be this much slower than SQLite."""
ENQUEUE_TARGET = 20_000.0
LATENCY_TARGET_MS = 200.0
"""A transactional message sent to an idle worker reaches the sink within this (p99)."""
RSS_FLAT_WITHIN = 0.20


class MismatchError(AssertionError):
    """What the sink counted is not what we claim was sent."""


@dataclass(frozen=True)
class Sizes:
    source_messages: int
    source_repeats: int
    smtplib_messages: int
    enqueue_messages: int
    e2e_messages: int
    rss_backlogs: tuple[int, ...]
    rss_stop_after: int
    rss_timeout: float
    latency_sends: int

    @classmethod
    def make(cls, quick: bool) -> Sizes:
        if quick:
            return cls(20_000, 3, 2_000, 5_000, 10_000, (10_000, 100_000), 9_000, 30.0, 200)
        return cls(
            100_000, 3, 5_000, 20_000, 50_000, (10_000, 100_000, 1_000_000), 9_000, 60.0, 1_000
        )


# -- reference ----------------------------------------------------------------------------


def reference(postfix: Postfix, workdir: Path, sizes: Sizes) -> tuple[list[Figure], float]:
    """smtp-source (the physical limit) and smtplib on one connection; returns the figures and
    smtp-source's median rate."""
    figures: list[Figure] = []
    with Sink(postfix, workdir) as sink:
        runs = []
        for attempt in range(sizes.source_repeats):
            run = run_smtp_source(postfix, sink, messages=sizes.source_messages)
            log(
                f"smtp-source run {attempt + 1}: {run.messages} in {run.seconds:.2f}s = "
                f"{run.rate:,.0f} msg/s (sink counted {run.sink_count})"
            )
            if run.sink_count != run.messages:
                raise MismatchError(
                    f"smtp-source sent {run.messages}, sink counted {run.sink_count}"
                )
            runs.append(run)
        median = statistics.median(r.rate for r in runs)
        figures.append(
            Figure(
                "reference",
                "smtp-source rate",
                median,
                "msg/s",
                extra={
                    "runs": [round(r.rate) for r in runs],
                    "messages": sizes.source_messages,
                    "command": "smtp-source -s 32 -d -m N -l 4000 -c",
                    "sink_counted": sum(r.sink_count for r in runs),
                },
            )
        )
        figures.append(_smtplib_reference(sink, sizes.smtplib_messages, median))
    return figures, median


def _smtplib_reference(sink: Sink, count: int, source_rate: float) -> Figure:
    """The stdlib's smtplib, one connection, one message after another: what a naive loop
    in the web process would reach."""
    data = build_envelope(message(0), default_from="bench@example.com").data
    before = sink.count()
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port) as client:
        for n in range(count):
            client.sendmail("bench@example.com", [f"user{n}@example.com"], data)
    seconds = time.perf_counter() - started
    counted = sink.wait_quiet(before + count) - before
    if counted != count:
        raise MismatchError(f"smtplib sent {count}, sink counted {counted}")
    log(f"smtplib one connection: {count / seconds:,.0f} msg/s")
    return Figure(
        "reference",
        "smtplib 1 connection rate",
        count / seconds,
        "msg/s",
        ratio=count / seconds / source_rate,
        ratio_to="smtp-source",
        extra={"messages": count, "sink_counted": counted},
    )


# -- enqueue ------------------------------------------------------------------------------


@contextmanager
def _timed_composition() -> Iterator[list[float]]:
    """Time every ``build_envelope`` call that ``Outbox.send_many`` makes."""
    spent = [0.0]
    namespace = vars(outbox_store)  # patch the name store.py calls, for this run only
    original = namespace["build_envelope"]

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    namespace["build_envelope"] = timed
    try:
        yield spent
    finally:
        namespace["build_envelope"] = original


def enqueue(name: str, database_url: str, count: int, batch: int = 1_000) -> list[Figure]:
    """``Outbox.send_many`` in batches of ``batch``, ``count`` distinct ~4 KB messages."""
    settings = settings_for(database_url)
    outbox = Outbox(settings)
    try:
        if outbox.engine.dialect.name != "sqlite":
            database.upgrade(outbox.engine)
        outbox.ensure_schema()
        items = [message(n) for n in range(count)]  # building the objects is not timed
        with _timed_composition() as composing:
            started = time.perf_counter()
            for first in range(0, count, batch):
                outbox.send_many(items[first : first + batch], stream="bulk")
            seconds = time.perf_counter() - started
        queued = outbox.counts().get("queued", 0)
    finally:
        outbox.dispose()
    if queued != count:
        raise MismatchError(f"enqueued {count}, the outbox holds {queued} queued")
    compose, commit = composing[0], seconds - composing[0]
    rate = count / seconds
    log(
        f"{name}: {rate:,.0f} msg/s; composing {compose:.2f}s ({count / compose:,.0f}/s), "
        f"the rest (rows + commit) {commit:.2f}s ({count / commit:,.0f}/s)"
    )
    bench = f"enqueue-{name}"
    return [
        Figure(
            bench,
            "send_many rate",
            rate,
            "msg/s",
            target=f">= {ENQUEUE_TARGET:,.0f} msg/s",
            ok=rate >= ENQUEUE_TARGET,
            extra={"messages": count, "batch": batch, "seconds": round(seconds, 3)},
        ),
        Figure(
            bench,
            "composing (build_envelope) share",
            100 * compose / seconds,
            "%",
            extra={"seconds": round(compose, 3), "rate": round(count / compose)},
        ),
        Figure(
            bench,
            "rows + commit share",
            100 * commit / seconds,
            "%",
            extra={"seconds": round(commit, 3), "rate": round(count / commit)},
        ),
    ]


# -- running a worker ---------------------------------------------------------------------

_SENT = re.compile(rb"sent (\d+)")


@dataclass
class WorkerRun:
    returncode: int
    seconds: float
    """From starting the process to its exit."""
    sink_counted: int
    worker_sent: int | None
    first_seen: float | None
    """Seconds from start until the sink had counted the first message."""
    steady_rate: float | None
    """Sink-side rate from its first to its last message (start-up excluded)."""
    peak_rss_kb: int
    max_sampled_rss_kb: int
    stderr: str


def worker_env(database_url: str, sink: Sink) -> dict[str, str]:
    """The caller's environment without any Mailroom setting, plus the benchmark's own."""
    ours = {*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"}
    base = {k: v for k, v in os.environ.items() if k not in ours}
    return {
        **base,
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink.port),
    }


def _proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def run_worker(
    database_url: str,
    sink: Sink,
    workdir: Path,
    *,
    once: bool,
    stop_when: Callable[[int, float], bool] | None = None,
    timeout: float = 600.0,
    extra_env: dict[str, str] | None = None,
) -> WorkerRun:
    """``python -m mailroom worker [--once]`` as a subprocess, sampling the sink's count and
    the process's memory every 20 ms; SIGTERM when ``stop_when(sent, elapsed)`` says so."""
    before = sink.count()
    command = [sys.executable, "-m", "mailroom", "worker", *(["--once"] if once else [])]
    out_path, err_path = workdir / "worker.out", workdir / "worker.err"
    peak = sampled = 0
    first_seen: tuple[float, int] | None = None
    last_change: tuple[float, int] | None = None
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env={**worker_env(database_url, sink), **(extra_env or {})},
            cwd=workdir,
            stdout=out,
            stderr=err,
        )
        stopping = False
        while process.poll() is None:
            elapsed = time.perf_counter() - started
            status = _proc_status(process.pid)
            peak = max(peak, status.get("VmHWM", 0))
            sampled = max(sampled, status.get("VmRSS", 0))
            counted = sink.count() - before
            if counted and first_seen is None:
                first_seen = (elapsed, counted)
            if last_change is None or counted != last_change[1]:
                last_change = (elapsed, counted)
            if not stopping and (
                (stop_when is not None and stop_when(counted, elapsed)) or elapsed > timeout
            ):
                process.send_signal(signal.SIGTERM)
                stopping = True
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    counted = sink.wait_quiet() - before
    stdout = out_path.read_bytes()
    found = _SENT.findall(stdout)  # one "sent N" line per worker process
    steady = None
    if first_seen is not None and last_change is not None and last_change[0] > first_seen[0]:
        steady = (last_change[1] - first_seen[1]) / (last_change[0] - first_seen[0])
    return WorkerRun(
        returncode=process.returncode,
        seconds=seconds,
        sink_counted=counted,
        worker_sent=sum(int(n) for n in found) if found else None,
        first_seen=first_seen[0] if first_seen else None,
        steady_rate=steady,
        peak_rss_kb=peak,
        max_sampled_rss_kb=sampled,
        stderr=err_path.read_text(errors="replace")[-2000:],
    )


# -- end to end ---------------------------------------------------------------------------


def _e2e_on(
    name: str, database_url: str, postfix: Postfix, workdir: Path, count: int
) -> tuple[WorkerRun, float]:
    settings = settings_for(database_url)
    fill = fill_backlog(settings, count)
    log(f"e2e-{name}: {count:,} messages queued in {fill:.1f}s (copied rows); running the worker")
    with Sink(postfix, workdir) as sink:
        run = run_worker(database_url, sink, workdir, once=True)
    if run.returncode != 0:
        raise RuntimeError(f"the worker exited with {run.returncode}: {run.stderr}")
    sent = status_counts(settings).get("sent", 0)
    if not run.sink_counted == run.worker_sent == sent == count:
        raise MismatchError(
            f"queued {count}; the sink counted {run.sink_counted}, the worker says it sent "
            f"{run.worker_sent}, the outbox marks {sent} sent"
        )
    rate = count / run.seconds
    log(
        f"e2e-{name}: {rate:,.0f} msg/s start to exit ({run.seconds:.2f}s); steady "
        f"{run.steady_rate or 0:,.0f} msg/s; sink counted {run.sink_counted}"
    )
    return run, rate


def e2e(
    name: str,
    database_url: str,
    postfix: Postfix,
    workdir: Path,
    *,
    count: int,
    source_rate: float | None,
    sqlite_rate: float | None = None,
) -> tuple[list[Figure], float]:
    """Queued to sent, ``python -m mailroom worker --once`` with default settings."""
    run, rate = _e2e_on(name, database_url, postfix, workdir, count)
    ratio = rate / source_rate if source_rate else None
    bench = f"e2e-{name}"
    if name == "sqlite":
        target, ok = (
            f">= {E2E_TARGET_RATIO} x smtp-source",
            None if ratio is None else ratio >= E2E_TARGET_RATIO,
        )
    else:
        target = f"within {POSTGRES_WITHIN:.0%} of SQLite"
        ok = None if sqlite_rate is None else rate >= (1 - POSTGRES_WITHIN) * sqlite_rate
    extra: dict[str, Any] = {
        "messages": count,
        "seconds": round(run.seconds, 3),
        "sink_counted": run.sink_counted,
        "worker_peak_rss_mb": round(run.peak_rss_kb / 1024, 1),
    }
    if sqlite_rate is not None and name != "sqlite":
        extra["ratio_to_sqlite"] = round(rate / sqlite_rate, 3)
    figures = [
        Figure(
            bench,
            "queued->sent rate (process start to exit)",
            rate,
            "msg/s",
            ratio=ratio,
            ratio_to="smtp-source" if ratio is not None else None,
            target=target,
            ok=ok,
            extra=extra,
        ),
        Figure(
            bench,
            "steady rate at the sink (first to last message)",
            run.steady_rate,
            "msg/s",
            ratio=run.steady_rate / source_rate if source_rate and run.steady_rate else None,
            ratio_to="smtp-source" if source_rate else None,
            extra={"first_message_after_s": round(run.first_seen or 0, 3)},
        ),
    ]
    return figures, rate


def e2e_sqlite(
    postfix: Postfix, workdir: Path, sizes: Sizes, source_rate: float | None
) -> tuple[list[Figure], float]:
    url = sqlite_url(workdir, "e2e.db")
    try:
        return e2e(
            "sqlite", url, postfix, workdir, count=sizes.e2e_messages, source_rate=source_rate
        )
    finally:
        remove_sqlite(url)


def e2e_postgresql(
    postfix: Postfix,
    workdir: Path,
    sizes: Sizes,
    source_rate: float | None,
    sqlite_rate: float | None,
) -> tuple[list[Figure], float]:
    with postgres_database("e2e") as url:
        return e2e(
            "postgresql",
            url,
            postfix,
            workdir,
            count=sizes.e2e_messages,
            source_rate=source_rate,
            sqlite_rate=sqlite_rate,
        )


# -- worker memory ------------------------------------------------------------------------


def rss(postfix: Postfix, workdir: Path, sizes: Sizes) -> list[Figure]:
    """Peak RSS of a worker with growing backlogs, each run until it has sent the same
    number of messages, so only the backlog differs."""
    figures: list[Figure] = []
    peaks: dict[int, int] = {}
    stop_after = sizes.rss_stop_after
    for backlog in sizes.rss_backlogs:
        url = sqlite_url(workdir, f"rss-{backlog}.db")
        try:
            fill = fill_backlog(settings_for(url), backlog, chunk=50_000)
            log(f"rss: {backlog:,} queued in {fill:.1f}s; worker runs until {stop_after:,} sent")
            with Sink(postfix, workdir) as sink:
                run = run_worker(
                    url,
                    sink,
                    workdir,
                    once=False,
                    stop_when=lambda sent, _elapsed: sent >= stop_after,
                    timeout=sizes.rss_timeout,
                )
        finally:
            remove_sqlite(url)
        if run.returncode != 0:
            raise RuntimeError(f"the worker exited with {run.returncode}: {run.stderr}")
        if run.sink_counted != run.worker_sent:
            raise MismatchError(
                f"the sink counted {run.sink_counted}, the worker says it sent {run.worker_sent}"
            )
        peaks[backlog] = run.peak_rss_kb
        log(
            f"rss: backlog {backlog:,}: peak RSS {run.peak_rss_kb / 1024:.1f} MB, "
            f"sent {run.sink_counted:,} in {run.seconds:.1f}s, "
            f"first after {run.first_seen or 0:.2f}s"
        )
        figures.append(
            Figure(
                "rss",
                f"worker peak RSS, {backlog:,} queued",
                run.peak_rss_kb / 1024,
                "MB",
                extra={
                    "backlog": backlog,
                    "sent": run.sink_counted,
                    "sink_counted": run.sink_counted,
                    "seconds": round(run.seconds, 2),
                    "first_message_after_s": round(run.first_seen or 0, 3),
                    "steady_rate": round(run.steady_rate or 0),
                    "fill_seconds": round(fill, 1),
                },
            )
        )
    smallest, largest = min(peaks), max(peaks)
    if largest != smallest:
        ratio = peaks[largest] / peaks[smallest]
        figures.append(
            Figure(
                "rss",
                f"peak RSS {largest:,} / {smallest:,} queued",
                ratio,
                "x",
                target=f"<= {1 + RSS_FLAT_WITHIN:.2f}",
                ok=ratio <= 1 + RSS_FLAT_WITHIN,
            )
        )
    return figures


# -- latency ------------------------------------------------------------------------------


def _wait_for_count(sink: Sink, above: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while sink.count() <= above:
        if time.perf_counter() > deadline:
            raise MismatchError(f"the sink did not receive message {above + 1} in {timeout}s")
        time.sleep(0.0005)


def latency(postfix: Postfix, workdir: Path, sizes: Sizes) -> list[Figure]:
    """One transactional ``Outbox.send`` at a time to an idle ``mailroom worker`` (default
    settings): from the call to the sink counting the message, over ``latency_sends`` sends
    at random points of the worker's idle polling."""
    url = sqlite_url(workdir, "latency.db")
    outbox = Outbox(settings_for(url))
    outbox.ensure_schema()
    rng = random.Random(20261121)  # noqa: S311 - when to send, not a secret
    delays: list[float] = []
    try:
        with Sink(postfix, workdir) as sink:
            worker = subprocess.Popen(
                [sys.executable, "-m", "mailroom", "worker"],
                env=worker_env(url, sink),
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                outbox.send(message(0))  # the worker's start-up is not part of the figure
                _wait_for_count(sink, 0, timeout=30)
                for n in range(1, sizes.latency_sends + 1):
                    time.sleep(rng.uniform(0, 0.05))
                    before = sink.count()
                    started = time.perf_counter()
                    outbox.send(message(n))
                    _wait_for_count(sink, before, timeout=10)
                    delays.append(time.perf_counter() - started)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
    finally:
        outbox.dispose()
        remove_sqlite(url)
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000
    log(f"latency: p50 {statistics.median(delays) * 1000:.1f} ms, p99 {p99:.1f} ms")
    return [
        Figure(
            "latency-sqlite",
            "transactional send -> sink, p99",
            p99,
            "ms",
            target=f"< {LATENCY_TARGET_MS:.0f} ms",
            ok=p99 < LATENCY_TARGET_MS,
            extra={
                "sends": len(delays),
                "p50_ms": round(statistics.median(delays) * 1000, 2),
                "max_ms": round(delays[-1] * 1000, 2),
            },
        )
    ]

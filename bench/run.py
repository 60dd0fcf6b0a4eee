"""Mailroom's throughput and memory benchmark against a real SMTP sink (issue #4).

    .venv/bin/python bench/run.py [--quick] [--only enqueue,e2e-sqlite,e2e-postgresql,rss,reference]

The sink is Postfix's smtp-sink, fetched from Debian's postfix package into bench/.cache/
(never installed or started as a mail service); Postfix's smtp-source against the same sink,
measured in the same run, is the physical-limit reference. Progress goes to stderr; stdout
gets the machine, a table, then one JSON line per figure. PostgreSQL scenarios use a fresh
database made through ``BENCH_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/
postgres) and dropped afterwards. The end-to-end scenarios always run the reference too: their
ratios count only within one run. The 1M-message memory case writes a SQLite file of about
4.5 GB under $TMPDIR. A full run takes about 3 minutes on 2 cores; the machine should be
otherwise idle (how busy its CPUs were just before the start is printed with the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Figure, log
from scenarios import Sizes, e2e_postgresql, e2e_sqlite, enqueue, latency, reference, rss
from sink import Postfix, ensure_postfix
from workload import postgres_database, postgres_version, remove_sqlite, sqlite_url

SCENARIOS = ("reference", "enqueue", "e2e-sqlite", "e2e-postgresql", "latency", "rss")
CACHE = Path(__file__).resolve().parent / ".cache"


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_before_start(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` before anything starts: other load."""
    busy0, total0 = _cpu_times()
    time.sleep(seconds)
    busy1, total1 = _cpu_times()
    return (busy1 - busy0) / max(1, total1 - total0)


def machine(postfix: Postfix | None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    try:
        pg: str | None = postgres_version()
    except Exception as exc:  # reported, not fatal: the PostgreSQL scenarios will say why
        pg = f"unreachable ({type(exc).__name__})"
    return {
        "bench": "machine",
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg,
        "postfix": postfix.version if postfix else None,
        "cpu_busy_before_start": round(busy_before_start(), 3),
    }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "msg/s":
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}"
    return f"{value:,.1f}"


def print_results(info: dict[str, Any], figures: list[Figure], quick: bool) -> None:
    print(
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gb']} GB, "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}, "
        f"Postfix {info['postfix']}; CPUs {info['cpu_busy_before_start']:.0%} busy before start"
        f"{'  [--quick]' if quick else ''}"
    )
    header = ("scenario", "figure", "value", "unit", "ratio", "target", "ok")
    rows = [
        (
            f.bench,
            f.metric if f.error is None else f"FAILED: {f.error.splitlines()[0][:90]}",
            _fmt(f.value, f.unit),
            f.unit,
            "-" if f.ratio is None else f"{f.ratio:.3f} x {f.ratio_to}",
            f.target or "",
            {True: "yes", False: "NO", None: ""}[f.ok],
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    right = {2}
    for n, row in enumerate((header, *rows)):
        cells = [
            str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print(json.dumps(info))
    for figure in figures:
        print(json.dumps(figure.as_json()))


class Run:
    """One benchmark run: the scenarios in order, each failure reported and survived."""

    def __init__(self, postfix: Postfix | None, workdir: Path, sizes: Sizes) -> None:
        self.postfix = postfix
        self.workdir = workdir
        self.sizes = sizes
        self.figures: list[Figure] = []
        self.source_rate: float | None = None
        self.sqlite_rate: float | None = None

    def attempt(self, name: str, body: Callable[[], list[Figure]]) -> None:
        log(f"== {name}")
        try:
            self.figures.extend(body())
        except Exception as exc:
            log(f"{name} FAILED:\n{traceback.format_exc()}")
            self.figures.append(
                Figure(name, "error", None, "", error=f"{type(exc).__name__}: {exc}")
            )

    def sink(self) -> Postfix:
        if self.postfix is None:
            raise RuntimeError("no smtp-sink (see the setup error)")
        return self.postfix

    def reference(self) -> list[Figure]:
        found, self.source_rate = reference(self.sink(), self.workdir, self.sizes)
        return found

    def enqueue_sqlite(self) -> list[Figure]:
        url = sqlite_url(self.workdir, "enqueue.db")
        try:
            return enqueue("sqlite", url, self.sizes.enqueue_messages)
        finally:
            remove_sqlite(url)

    def enqueue_postgresql(self) -> list[Figure]:
        with postgres_database("enqueue") as url:
            return enqueue("postgresql", url, self.sizes.enqueue_messages)

    def e2e_sqlite(self) -> list[Figure]:
        found, self.sqlite_rate = e2e_sqlite(
            self.sink(), self.workdir, self.sizes, self.source_rate
        )
        return found

    def e2e_postgresql(self) -> list[Figure]:
        return e2e_postgresql(
            self.sink(), self.workdir, self.sizes, self.source_rate, self.sqlite_rate
        )[0]

    def rss(self) -> list[Figure]:
        return rss(self.sink(), self.workdir, self.sizes)

    def latency(self) -> list[Figure]:
        return latency(self.sink(), self.workdir, self.sizes)

    def all(self, chosen: list[str]) -> None:
        if "reference" in chosen or any(s.startswith("e2e") for s in chosen):
            # The e2e ratios need the reference from this same run.
            self.attempt("reference", self.reference)
        if "enqueue" in chosen:
            self.attempt("enqueue-sqlite", self.enqueue_sqlite)
            self.attempt("enqueue-postgresql", self.enqueue_postgresql)
        if "e2e-sqlite" in chosen:
            self.attempt("e2e-sqlite", self.e2e_sqlite)
        if "e2e-postgresql" in chosen:
            self.attempt("e2e-postgresql", self.e2e_postgresql)
        if "latency" in chosen:
            self.attempt("latency", self.latency)
        if "rss" in chosen:
            self.attempt("rss", self.rss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="Smaller counts, for a smoke run.")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"Comma-separated scenarios out of: {','.join(SCENARIOS)}.",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {SCENARIOS}")

    setup: list[Figure] = []
    postfix: Postfix | None = None
    try:
        postfix = ensure_postfix(CACHE)
    except Exception as exc:
        log(f"Postfix's smtp-sink is not available: {exc}")
        setup.append(Figure("setup", "postfix", None, "", error=str(exc)))

    with tempfile.TemporaryDirectory(prefix="mailroom-bench-") as scratch:
        workdir = Path(scratch)
        os.chdir(workdir)  # so no mailroom.toml from the caller's folder is read
        info = machine(postfix)
        log(f"machine: {json.dumps(info)}")
        if info["cpu_busy_before_start"] > 0.1:
            log(
                f"WARNING: the CPUs were {info['cpu_busy_before_start']:.0%} busy before the "
                "benchmark started: something else is running, and the figures will be low"
            )
        run = Run(postfix, workdir, Sizes.make(args.quick))
        run.figures.extend(setup)
        try:
            run.all(chosen)
        finally:
            os.chdir("/")

    print_results(info, run.figures, args.quick)
    return 1 if any(f.error for f in run.figures) else 0


if __name__ == "__main__":
    sys.exit(main())

"""CSV import of contacts into a mailing list (issue 14): rows a second with the rejection
report, and the command's peak memory, for 100,000 and 1,000,000 synthetic rows.

    .venv/bin/python bench/contacts_import.py [--sizes 100000,1000000] [--postgres URL]

Each file has a header (``email,name,city,plan``) and rows of made-up contacts over 500
domains, in no order (as lists exported from another system are), with about 1 % bad
addresses and about 1 % duplicates of an earlier row (the same address in another case). The
files are written first, outside the measured time. Then the real command,
``mailroom lists import bench FILE --create``, runs in a process of its own against a fresh
database (SQLite in a temporary folder, with its durable commits; PostgreSQL when
``--postgres`` or ``MAILROOM_TEST_POSTGRES_URL`` names a server: a database
``mailroom_bench_contacts`` is made there and dropped after). Its stderr (the report, one
line per rejected row) goes to a file, whose lines are counted against the summary.

The rate is the file's rows over the command's run, from when it starts to when it returns
(opening the database, reading the file, writing the batches, the report); the rate over the
whole process, Python's start and Mailroom's imports included, is printed beside it. Peak
memory is the most the process had resident while the command ran (Linux's ``VmHWM``,
started again once Mailroom is imported: every ``mailroom`` command peaks at about 128 MB
while it imports, from the admin module's dummy scrypt hash, and frees it), beside the same
for ``mailroom lists`` on an empty database. Target: at least
50,000 rows a second. Progress goes to stderr;
stdout gets a table, then one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from common import Figure, log
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine, normalise_url

TARGET = 50_000
BAD_SHARE = 0.01
DUPLICATE_SHARE = 0.01
_CITIES = ["London", "Paris", "Zürich", "Lagos", "Lima", "Osaka", "Kyiv", "Toronto", "Pune"]
_FIRST = ["Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Alan", "Edsger", "Zoë"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Turing"]
_SUMMARY = re.compile(r"imported ([\d,]+), updated ([\d,]+), rejected ([\d,]+)")


def write_file(path: Path, rows: int, seed: int = 14) -> tuple[int, int]:
    """A CSV of ``rows`` contacts; (bad rows, duplicate rows) written."""
    rng = random.Random(seed)  # noqa: S311 (made-up data, reproducible)
    bad = duplicates = 0
    recent: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write("email,name,city,plan\n")
        for n in range(rows):
            draw = rng.random()
            if draw < BAD_SHARE:
                address = rng.choice(
                    [f"user{n}.example.com", f"user {n}@example.com", f"user{n}@exa_mple.com"]
                )
                bad += 1
            elif draw < BAD_SHARE + DUPLICATE_SHARE and recent:
                address = rng.choice(recent).upper()
                duplicates += 1
            else:
                local = f"{rng.choice(_FIRST).lower()}.{rng.getrandbits(40):x}{n}"
                address = f"{local}@mail{rng.randrange(500)}.example.com"
                if len(recent) < 10_000:
                    recent.append(address)
                else:
                    recent[rng.randrange(len(recent))] = address
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            plan = "gold" if n % 7 == 0 else "free"
            file.write(f"{address},{name},{rng.choice(_CITIES)},{plan}\n")
    return bad, duplicates


# The command, run by the package's own entry point in a process of its own, timed from
# when it starts running to when it returns: Python's start and the imports every `mailroom`
# command makes (about 0.8 s and 128 MB here, most of it the admin module's dummy scrypt hash)
# are measured apart, as the whole process.
_TIMED = """
import sys, time
from mailroom.cli import main
try:  # Linux: start the peak resident set (VmHWM) again from what is resident now
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
except OSError:
    pass
started = time.perf_counter()
try:
    main(sys.argv[1:], prog_name="mailroom")
except SystemExit as end:
    code = end.code
print(f"@elapsed {time.perf_counter() - started}")
with open("/proc/self/status") as status:
    print("@" + next(line for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""
_ELAPSED = re.compile(r"^@elapsed ([\d.]+)$", re.MULTILINE)
_PEAK = re.compile(r"^@VmHWM:\s+(\d+) kB$", re.MULTILINE)


def run_command(
    args: list[str], database_url: str, stderr_to: Path
) -> tuple[float, float, int, str]:
    """Run ``mailroom ARGS``; (seconds the command ran, seconds of the whole process, peak
    resident KiB while the command ran, stdout)."""
    env = dict(os.environ, DATABASE_URL=database_url)
    env.pop("MAILROOM_CONFIG", None)
    with stderr_to.open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", _TIMED, *args], env=env, stdout=subprocess.PIPE, stderr=stderr
        )
        assert process.stdout is not None
        out = process.stdout.read().decode()
        _, status = os.waitpid(process.pid, 0)
        whole = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    timed, peak = _ELAPSED.search(out), _PEAK.search(out)
    if code not in (0, 1) or timed is None or peak is None:
        raise RuntimeError(f"mailroom {args} failed ({code}): {stderr_to.read_text()[-500:]}")
    return float(timed.group(1)), whole, int(peak.group(1)), out


def measure(backend: str, database_url: str, path: Path, rows: int, scratch: Path) -> Figure:
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    engine.dispose()
    report = scratch / f"report-{backend}-{rows}.txt"
    log(f"{backend}: importing {rows:,} rows")
    args = ["lists", "import", "bench", str(path), "--create"]
    elapsed, whole, peak_kib, out = run_command(args, database_url, report)
    found = _SUMMARY.search(out)
    if found is None:
        raise RuntimeError(f"no summary in {out!r}")
    imported, updated, rejected = (int(group.replace(",", "")) for group in found.groups())
    with report.open("rb") as lines:
        # The report: "created the list", a line per rejected row, the closing error line.
        named = sum(1 for line in lines if line.startswith(str(path).encode() + b":"))
    if named != rejected or imported + updated + rejected != rows:
        raise RuntimeError(f"{rows} rows, but {out.strip()!r} and {named} rows named")
    rate = rows / elapsed
    summary = found.group(0)
    log(f"{backend}: {rate:,.0f} rows/s ({rows / whole:,.0f} for the whole process), {summary}")
    return Figure(
        bench=f"contacts import, {backend}",
        metric=f"{rows:,} rows, ~1% bad, ~1% duplicates",
        value=rate,
        unit="rows/s",
        target=f">= {TARGET:,} rows/s",
        ok=rate >= TARGET,
        extra={
            "rows": rows,
            "seconds": round(elapsed, 2),
            "process_seconds": round(whole, 2),
            "process_rows_per_s": round(rows / whole),
            "imported": imported,
            "rejected": rejected,
            "peak_rss_mb": round(peak_kib / 1024, 1),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="rows per file, comma-separated")
    parser.add_argument("--postgres", help="a PostgreSQL server URL to run on as well")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    postgres = options.postgres or os.environ.get("MAILROOM_TEST_POSTGRES_URL")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-contacts-") as scratch_name:
        scratch = Path(scratch_name)
        empty = f"sqlite:///{scratch / 'empty.db'}"
        engine = create_outbox_engine(empty)
        database.upgrade(engine)
        engine.dispose()
        _, start_seconds, baseline_kib, _ = run_command(["lists"], empty, scratch / "lists.txt")
        log(f"`mailroom lists` alone: {start_seconds:.2f} s, peak {baseline_kib / 1024:.0f} MB")
        for rows in sizes:
            path = scratch / f"contacts-{rows}.csv"
            bad, duplicates = write_file(path, rows)
            log(f"wrote {rows:,} rows ({bad:,} bad, {duplicates:,} duplicates) to {path}")
            sqlite_url = f"sqlite:///{scratch / f'outbox-{rows}.db'}"
            figures.append(measure("SQLite", sqlite_url, path, rows, scratch))
            if postgres:
                figures.append(measure_postgres(postgres, path, rows, scratch))
            path.unlink()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores; load {load:.2f}; python {sys.version.split()[0]}")
    print(
        f"`mailroom lists` on an empty database: {start_seconds:.2f} s, "
        f"peak {baseline_kib / 1024:.1f} MB"
    )
    for figure in figures:
        peak, whole = figure.extra["peak_rss_mb"], figure.extra["process_rows_per_s"]
        print(
            f"{figure.bench:26} {figure.metric:38} {figure.value or 0:>9,.0f} rows/s "
            f"({whole:,} with process start)  peak {peak:6.1f} MB  "
            f"{'ok' if figure.ok else 'MISSED'}"
        )
    for figure in figures:
        print(json.dumps(figure.as_json()))


def measure_postgres(server: str, path: Path, rows: int, scratch: Path) -> Figure:
    name = "mailroom_bench_contacts"
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(normalise_url(server)).set(database=name)
        return measure("PostgreSQL", url.render_as_string(hide_password=False), path, rows, scratch)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()

"""The admin's message search over a million messages (issue #12): every kind of filter,
its first page and a deep page (through a cursor), on SQLite and optionally PostgreSQL.

    .venv/bin/python bench/messages_search.py [--rows 1000000] [--postgres URL] [--keep DIR]

The database is built by the migrations, then filled at the driver level (multi-row inserts
on SQLite, COPY on PostgreSQL) with messages of a realistic mix: eight statuses, three
streams, a dozen notification types, one to three recipients out of 200,000 addresses (a few
of them very busy), subjects from templates, ninety days of creation times, and each
recipient's ``queued`` event. The secondary indexes are dropped for the fill and built again
after it (what a restore does; a live outbox grows them a row at a time). SQLite gets no
``ANALYZE`` (nothing runs it there: its planner must find the indexes without statistics);
PostgreSQL gets the ``VACUUM ANALYZE`` its autovacuum runs soon after any load this size.

Each search is the call the admin page makes (:func:`search_messages`, a page of 50); its
time is the median of several runs on a warm cache. Target: under 200 ms each. Progress goes
to stderr; stdout gets the query plans, a table, then one JSON line per figure.
PostgreSQL runs when ``--postgres`` or ``MAILROOM_TEST_POSTGRES_URL`` names a server: a
database ``mailroom_bench_search`` is made there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from common import Figure, log
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine, normalise_url
from mailroom.outbox.message_search import (
    MessageSearch,
    SearchPage,
    search_messages,
    search_plan,
)
from mailroom.outbox.read_engine import read_only_engine
from mailroom.outbox.vocabulary import Status

TARGET_MS = 200.0
RUNS = 7
PAGE = 50
DEEP = 200  # the deep page starts after this many pages' rows

_STATUSES = [
    ("sent", 82),
    ("failed", 4),
    ("deferred", 2),
    ("queued", 3),
    ("scheduled", 2),
    ("sending", 1),
    ("cancelled", 2),
    ("suppressed", 4),
]
_STREAMS = [("transactional", 50), ("notifications", 30), ("bulk", 20)]
_TYPES = [
    "comment",
    "mention",
    "assigned",
    "due_soon",
    "invoice",
    "receipt",
    "password_reset",
    "login_alert",
    "weekly_digest",
    "invitation",
    "export_ready",
    "trial_ending",
]
_SUBJECTS = {
    "comment": "New comment on “{thing}” by {name}",
    "mention": "{name} mentioned you in {thing}",
    "assigned": "You were assigned to {thing}",
    "due_soon": "{thing} is due in {n} days",
    "invoice": "Your invoice #{n} for {month}",
    "receipt": "Receipt for your payment of ${n}.00",
    "password_reset": "Reset your password",
    "login_alert": "New sign-in from {place}",
    "weekly_digest": "Your weekly digest: {n} updates in {thing}",
    "invitation": "{name} invited you to {thing}",
    "export_ready": "Your export of {thing} is ready",
    "trial_ending": "Your trial ends in {n} days",
}
_THINGS = ["Apollo", "Budget 2027", "Website redesign", "Q3 roadmap", "Hiring plan", "Ops"]
_NAMES = ["Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Alan", "Edsger"]
_PLACES = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
_ADDRESSES = 200_000
_BUSY = "ops@example.com"  # on about 1 message in 500
_DAYS = 90
_BODY = (
    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    + "Hello, this is a notification. " * 20
    + "\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>"
    + "Hello, this is a notification. " * 20
    + "</p>\r\n--b--\r\n"
).encode()


def _weighted(pairs: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    return [name for name, _ in pairs], [weight for _, weight in pairs]


def generate(count: int, now: float, seed: int = 12) -> Iterator[tuple[tuple[Any, ...], list[str]]]:
    """``count`` message rows (in the driver's column order) with their recipients, oldest
    first; ids are given, 1 to ``count``."""
    rng = random.Random(seed)  # noqa: S311 (made-up data, reproducible)
    statuses, status_weights = _weighted(_STATUSES)
    streams, stream_weights = _weighted(_STREAMS)
    start = now - _DAYS * 86400
    step = _DAYS * 86400 / count
    for pk in range(1, count + 1):
        created = start + pk * step + rng.random() * step  # increasing, never equal
        kind = rng.choice(_TYPES) if rng.random() < 0.6 else None
        subject = _SUBJECTS[kind or rng.choice(_TYPES)].format(
            thing=rng.choice(_THINGS),
            name=rng.choice(_NAMES),
            n=rng.randint(2, 99999),
            month=rng.choice(_MONTHS),
            place=rng.choice(_PLACES),
        )
        extra = json.dumps({"notification_type": kind}) if kind else None
        if rng.random() < 0.002:
            recipients = [_BUSY]
        else:
            # A skewed pick: low numbers (long-time users) get much more mail.
            recipients = [
                f"user{int(rng.paretovariate(1.2)) % _ADDRESSES}@example{pk % 7}.com"
                for _ in range(1 if rng.random() < 0.9 else rng.randint(2, 3))
            ]
        status = rng.choices(statuses, status_weights)[0]
        stream = rng.choices(streams, stream_weights)[0]
        sent_at = created + 2 if status == "sent" else None
        row = (
            pk,
            f"<{pk}.{int(created)}@mail.example.com>",
            stream,
            {"transactional": 0, "bulk": 100}.get(stream, 50),
            status,
            "App <noreply@example.com>",
            json.dumps(recipients),
            subject,
            b"Subject: " + subject.encode() + b"\r\n" + _BODY,
            False,
            extra,
            created,
            created,
            created + 2,
            sent_at,
            0 if status in ("queued", "scheduled") else 1,
            "550 5.1.1 mailbox unavailable" if status == "failed" else None,
        )
        yield row, recipients


_MESSAGE_COLUMNS = (
    "id",
    "message_id",
    "stream",
    "priority",
    "status",
    "sender",
    "recipients",
    "subject",
    "data",
    "smtputf8",
    "extra",
    "created_at",
    "due_at",
    "updated_at",
    "sent_at",
    "attempts",
    "last_error",
)
_EVENT_COLUMNS = ("message_pk", "recipient", "type", "at")


def _chunks(count: int, now: float, size: int) -> Iterator[tuple[list[Any], list[Any]]]:
    rows: list[Any] = []
    found: list[Any] = []
    for row, recipients in generate(count, now):
        rows.append(row)
        found.extend((row[0], address, "queued", row[11]) for address in recipients)
        if len(rows) == size:
            yield rows, found
            rows, found = [], []
    if rows:
        yield rows, found


def fill_sqlite(path: Path, count: int, now: float) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('mailroom_messages', 'mailroom_events')"
    ).fetchall()
    for name, _ in indexes:
        connection.execute(f"DROP INDEX {name}")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("BEGIN")
    per = 500  # 17 columns: 8,500 parameters a statement
    # Column names of our own, never input: nothing to inject.
    message_head = f"INSERT INTO mailroom_messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES "  # noqa: S608
    message_row = "(" + ", ".join(["?"] * len(_MESSAGE_COLUMNS)) + ")"
    event_sql = f"INSERT INTO mailroom_events ({', '.join(_EVENT_COLUMNS)}) VALUES (?, ?, ?, ?)"  # noqa: S608
    for done, (rows, found) in enumerate(_chunks(count, now, per), 1):
        sql = message_head + ", ".join([message_row] * len(rows))
        connection.execute(sql, [value for row in rows for value in row])
        connection.executemany(event_sql, found)
        if done % 200 == 0:
            log(f"sqlite: {done * per:,} messages")
    connection.execute("COMMIT")
    log("sqlite: building the indexes again")
    for _, sql in indexes:
        connection.execute(sql)
    connection.close()


def fill_postgres(url: str, count: int, now: float) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        indexes = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN"
            " ('mailroom_messages', 'mailroom_events') AND indexname NOT LIKE 'pk_%'"
            " AND indexname NOT LIKE 'uq_%'"
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f"DROP INDEX {name}")
        # The events' foreign key checks a row at a time; the fill makes only valid rows.
        connection.execute("ALTER TABLE mailroom_events DISABLE TRIGGER ALL")
        with connection.cursor() as cursor:
            messages_copy = f"COPY mailroom_messages ({', '.join(_MESSAGE_COLUMNS)}) FROM STDIN"
            events_copy = f"COPY mailroom_events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN"
            found_all: list[Any] = []
            with cursor.copy(messages_copy) as copy:
                for done, (rows, found) in enumerate(_chunks(count, now, 1000), 1):
                    for row in rows:
                        copy.write_row(row)
                    found_all.extend(found)
                    if done % 100 == 0:
                        log(f"postgresql: {done * 1000:,} messages")
            with cursor.copy(events_copy) as copy:
                for event in found_all:
                    copy.write_row(event)
        connection.execute("ALTER TABLE mailroom_events ENABLE TRIGGER ALL")
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('mailroom_messages', 'id'), %s)", (count,)
        )
        connection.commit()
        log("postgresql: building the indexes again")
        for _, sql in indexes:
            connection.execute(sql)
        connection.commit()
    # What autovacuum does to a table within a minute of a load this size (it analyzes after
    # 10% of the rows change): the bench does not wait for it.
    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as connection:
        connection.execute("VACUUM ANALYZE mailroom_messages")
        connection.execute("VACUUM ANALYZE mailroom_events")


def searches(now: float) -> dict[str, MessageSearch]:
    day = 86400.0
    return {
        "everything": MessageSearch(),
        "status failed": MessageSearch(status=Status.FAILED),
        "status sending": MessageSearch(status=Status.SENDING),
        "stream bulk": MessageSearch(stream="bulk"),
        "type invoice": MessageSearch(notification_type="invoice"),
        "recipient busy": MessageSearch(recipient=_BUSY.upper()),
        "recipient rare": MessageSearch(recipient="user4321@example3.com"),
        "recipient none": MessageSearch(recipient="nobody@example.org"),
        "subject common": MessageSearch(subject="invoice"),
        "subject rare": MessageSearch(subject="#4242 for"),
        "subject none": MessageSearch(subject="no such words"),
        "one day": MessageSearch(created_from=now - 30 * day, created_before=now - 29 * day),
        "failed+type+30d": MessageSearch(
            status=Status.FAILED, notification_type="password_reset", created_from=now - 30 * day
        ),
        "cancelled+bulk+subj": MessageSearch(
            status=Status.CANCELLED, stream="bulk", subject="digest"
        ),
        "sent+recipient": MessageSearch(status=Status.SENT, recipient=_BUSY),
    }


def _timed(run: Callable[[], SearchPage]) -> tuple[float, SearchPage]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def bench(engine: Engine, label: str, now: float) -> list[Figure]:
    figures = []
    for name, search in searches(now).items():
        with engine.connect() as connection:
            plan = search_plan(connection, search)
            print(f"-- {label} {name}: " + " | ".join(line.strip() for line in plan))
            first_ms, first = _timed(partial(search_messages, connection, search))
            # The deep page: the cursor of the row DEEP pages in, found once (untimed).
            deep_cursor = None
            page = first
            for _ in range(DEEP):
                if page.next_cursor is None:
                    break
                deep_cursor = page.next_cursor
                page = search_messages(connection, search, cursor=deep_cursor)
            deep_ms = None
            if deep_cursor is not None:
                deep_ms, page = _timed(
                    partial(search_messages, connection, search, cursor=deep_cursor)
                )
        extra = {"database": label, "rows_first_page": len(first.rows)}
        figures.append(
            Figure(
                f"search-{label}",
                f"{name}: first",
                first_ms,
                "ms",
                target=f"< {TARGET_MS:.0f} ms",
                ok=first_ms < TARGET_MS,
                extra=extra,
            )
        )
        if deep_ms is not None:
            figures.append(
                Figure(
                    f"search-{label}",
                    f"{name}: page {DEEP + 1}",
                    deep_ms,
                    "ms",
                    target=f"< {TARGET_MS:.0f} ms",
                    ok=deep_ms < TARGET_MS,
                    extra={**extra, "rows_deep_page": len(page.rows)},
                )
            )
        log(f"{label} {name}: {first_ms:.1f} ms" + (f", deep {deep_ms:.1f} ms" if deep_ms else ""))
    return figures


def run_sqlite(count: int, now: float, folder: Path) -> list[Figure]:
    path = folder / "search.db"
    url = f"sqlite:///{path}"
    engine = create_outbox_engine(url)
    database.upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    fill_sqlite(path, count, now)
    log(f"sqlite: filled {count:,} messages in {time.perf_counter() - started:.0f} s")
    engine = create_outbox_engine(url)
    reader = read_only_engine(engine)  # what the admin pages read with
    try:
        return bench(reader, "sqlite", now)
    finally:
        reader.dispose()
        engine.dispose()


def run_postgres(admin_url: str, count: int, now: float) -> list[Figure]:
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = "mailroom_bench_search"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalise_url(admin_url)).set(database=name).render_as_string(False)
    try:
        engine = create_outbox_engine(url)
        database.upgrade(engine)
        engine.dispose()
        started = time.perf_counter()
        fill_postgres(url, count, now)
        log(f"postgresql: filled {count:,} messages in {time.perf_counter() - started:.0f} s")
        engine = create_outbox_engine(url)
        try:
            return bench(engine, "postgresql", now)
        finally:
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages to fill")
    parser.add_argument("--postgres", help="a PostgreSQL server URL to run on as well")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    options = parser.parse_args()
    postgres = options.postgres or os.environ.get("MAILROOM_TEST_POSTGRES_URL")
    now = time.time()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-search-") as scratch:
        if not options.no_sqlite:
            figures.extend(run_sqlite(options.rows, now, Path(scratch)))
    if postgres:
        figures.extend(run_postgres(postgres, options.rows, now))
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores; load {load:.2f}; python {sys.version.split()[0]}")
    print(f"{options.rows:,} messages; a page of {PAGE}; median of {RUNS} runs, warm cache")
    for figure in figures:
        value = "-" if figure.value is None else f"{figure.value:,.1f}"
        verdict = "" if figure.ok is None else ("ok" if figure.ok else "MISSED")
        print(
            f"{figure.bench:18} {figure.metric:32} {value:>9} {figure.unit:3} "
            f"{figure.target or '':9} {verdict}"
        )
    for figure in figures:
        print(json.dumps(figure.as_json()))


if __name__ == "__main__":
    main()

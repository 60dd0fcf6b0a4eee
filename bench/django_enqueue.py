"""What a Django send costs through Mailroom's EmailBackend: microseconds per message from
``send_mail`` to a committed outbox row, on SQLite and PostgreSQL.

    .venv/bin/python bench/django_enqueue.py [--messages 2000] [--postgres URL]

Three ways a project sends: each ``send_mail`` in its own transaction (autocommit), many
inside one ``transaction.atomic()`` block (a savepoint each), and ``send_mass_mail`` (one
savepoint for all). Django is configured in this process (``settings.configure``); the
PostgreSQL database is created and dropped.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _configure(sqlite: Path, postgres: str | None) -> None:
    import django  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    databases = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite)}}
    if postgres:
        url = make_url(postgres)
        databases["pg"] = {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": url.host or "127.0.0.1",
            "PORT": str(url.port or 5432),
            "USER": url.username or "postgres",
            "NAME": url.database or "",
        }
    settings.configure(
        DATABASES=databases,
        INSTALLED_APPS=["mailroom.integrations.django"],
        EMAIL_BACKEND="mailroom.integrations.django.EmailBackend",
        DEFAULT_FROM_EMAIL="bench@example.com",
        USE_TZ=True,
        MAILROOM={"DATABASE": "default"},
    )
    django.setup()


def _per_message(n: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    n: int = args.messages
    admin = create_engine(
        make_url(args.postgres).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = f"mailroom_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory() as folder:
            _configure(Path(folder) / "app.db", str(make_url(args.postgres).set(database=name)))
            from django.core.mail import send_mail, send_mass_mail  # noqa: PLC0415
            from django.core.management import call_command  # noqa: PLC0415
            from django.db import connections, transaction  # noqa: PLC0415
            from django.test.utils import override_settings  # noqa: PLC0415

            print(f"{'database':<12}{'way':<34}{'µs/message':>12}")
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):

                def locmem() -> None:
                    for i in range(n):
                        send_mail(f"s{i}", "body", None, [f"u{i}@example.com"])

                # For scale: Django building each message, stored in a list (no database).
                print(f"{'(none)':<12}{'locmem backend, send_mail':<34}", end="")
                print(f"{_per_message(n, locmem):>12.0f}", flush=True)
            for alias in ("default", "pg"):
                with override_settings(MAILROOM={"DATABASE": alias}):
                    call_command("mailroom_migrate", verbosity=0)
                    send_mail("warm-up", "b", None, ["a@example.com"])

                    def each() -> None:
                        for i in range(n):
                            send_mail(f"s{i}", "body", None, [f"u{i}@example.com"])

                    def in_block(alias: str = alias) -> None:
                        with transaction.atomic(using=alias):
                            for i in range(n):
                                send_mail(f"s{i}", "body", None, [f"u{i}@example.com"])

                    def mass() -> None:
                        send_mass_mail(
                            [(f"s{i}", "body", None, [f"u{i}@example.com"]) for i in range(n)]
                        )

                    label = "SQLite" if alias == "default" else "PostgreSQL"
                    for way, run in (
                        ("send_mail, autocommit", each),
                        ("send_mail x N in one atomic()", in_block),
                        ("send_mass_mail", mass),
                    ):
                        print(f"{label:<12}{way:<34}{_per_message(n, run):>12.0f}", flush=True)
            connections.close_all()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()

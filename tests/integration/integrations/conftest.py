"""Fixtures of the integrations' tests: a real Redis for the Celery tests (skipped when none
runs, unless MAILROOM_REQUIRE_REDIS), and the Django project the Django integration's tests
run in (``django_project/``).

``django.setup()`` is process-wide, so the project is set up once per test session, with two
databases: SQLite (``default``) and, when it is reachable, a fresh PostgreSQL database
(``pg``). Each test points ``MAILROOM["DATABASE"]`` and ``EMAIL_PORT`` where it needs with
``override_settings``, which the backend follows (it rereads its settings on
``setting_changed``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import Engine, text

from mailroom.config import Settings, redact_url
from mailroom.delivery.worker import Worker, WorkerStats

REDIS_URL = os.environ.get("MAILROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
"""A database number of the tests' own, away from a developer's database 0."""


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        problem = None
    except redis.RedisError as exc:
        problem = str(exc)
    finally:
        client.close()
    if problem is not None:
        if os.environ.get("MAILROOM_REQUIRE_REDIS"):
            pytest.fail(
                f"Redis is required here (MAILROOM_REQUIRE_REDIS) but not reachable at "
                f"{redact_url(REDIS_URL)}: {problem}",
                pytrace=False,
            )
        pytest.skip(
            f"Redis not reachable at {redact_url(REDIS_URL)}: {problem} (start redis-server, "
            "or set MAILROOM_TEST_REDIS_URL; .ci/run does)"
        )
    return REDIS_URL


DJANGO_SETTINGS = "integration.integrations.django_project.settings"


@pytest.fixture(scope="session")
def django_project(
    tmp_path_factory: pytest.TempPathFactory, postgres_admin: Engine | None
) -> Iterator[list[str]]:
    """Django set up, its tables and the outbox's migrated; the aliases there are."""
    import django  # noqa: PLC0415 - only the tests that use the project import it
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    os.environ["DJANGO_PROJECT_SQLITE"] = str(tmp_path_factory.mktemp("django") / "app.db")
    pg_name = None
    if postgres_admin is not None:
        pg_name = f"mailroom_django_{secrets.token_hex(6)}"
        with postgres_admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = postgres_admin.url  # the URL object: str() would mask the password
        os.environ["DJANGO_PROJECT_POSTGRES"] = json.dumps(
            {
                "HOST": url.host or "127.0.0.1",
                "PORT": str(url.port or 5432),
                "USER": url.username or "postgres",
                "PASSWORD": url.password or "",
                "NAME": pg_name,
            }
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = DJANGO_SETTINGS
    django.setup()
    aliases = list(connections)
    for alias in aliases:
        # Django's migrate makes the outbox tables too (the mailroom app's migration).
        with override_settings(MAILROOM={"DATABASE": alias}):
            call_command("migrate", database=alias, verbosity=0)
    yield aliases
    connections.close_all()
    if pg_name is not None and postgres_admin is not None:
        with postgres_admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


@pytest.fixture(params=["default", "pg"], ids=["sqlite", "postgresql"])
def alias(request: pytest.FixtureRequest, django_project: list[str]) -> str:
    """A Django database alias the outbox shares: SQLite, then PostgreSQL."""
    if request.param not in django_project:
        if os.environ.get("MAILROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here but not reachable")
        pytest.skip("PostgreSQL not reachable")
    return str(request.param)


Deliver = Callable[[], WorkerStats]


@pytest.fixture
def deliver(django_project: list[str]) -> Deliver:
    """Run Mailroom's worker, with the settings Django's are now, until nothing is due."""
    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415

    def run() -> WorkerStats:
        settings: Settings = current_settings().settings
        return asyncio.run(Worker(settings, once=True).run())

    return run

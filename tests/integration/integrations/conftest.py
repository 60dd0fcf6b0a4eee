"""A real Redis for the Celery tests: skipped when none runs, unless MAILROOM_REQUIRE_REDIS."""

from __future__ import annotations

import os

import pytest
import redis

from mailroom.config import redact_url

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

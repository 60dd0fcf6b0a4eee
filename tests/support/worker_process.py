"""Running ``python -m mailroom worker`` as a process of its own, as the fault tests do."""

from __future__ import annotations

import os
import sys

from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.store import Outbox


def worker_args(*extra: str) -> list[str]:
    return [sys.executable, "-m", "mailroom", "worker", *extra]


def worker_env(settings_env: dict[str, str]) -> dict[str, str]:
    """The process's environment: this one's, less its mail settings, plus ``settings_env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "MAILROOM_"))}
    return {**inherited, **settings_env}


def prepare(database_url: str, port: int, **extra: str) -> tuple[dict[str, str], Outbox]:
    """The worker's environment (none of our mail settings inherited) for a relay on ``port``,
    and an outbox on its database, upgraded."""
    env = {"DATABASE_URL": database_url, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port)}
    env.update(extra)
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    return worker_env(env), outbox

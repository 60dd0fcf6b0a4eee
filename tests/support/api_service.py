"""A real ``mailroom serve`` for the API tests: a settings file declaring a notification
type, its template, an SMTP password and a ``SECRET_KEY`` that no answer may show, and an
admin key and two send keys made in its database.

The capture transport (the default) delivers, so a sent message shows up in the captured-mail
API; ``WORKER_POLL_INTERVAL`` is short so it does so quickly.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from mailroom.access.apikeys import create_api_key, revoke_api_key
from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.vocabulary import ApiKeyScope
from support.api_client import SecretWatch, api_client
from support.service import ServiceProcess

__all__ = ["ApiService", "running_api_service"]

SETTINGS = """\
DATABASE_URL = "{database_url}"
DEFAULT_FROM_EMAIL = "Acme <noreply@acme.example>"
EMAIL_TEMPLATE_DIRS = ["{templates}"]
WORKER_POLL_INTERVAL = 0.05
API_MAX_BATCH_SIZE = 5
API_MAX_BODY_BYTES = 100000

[notification_types."task.assigned"]
template = "task_assigned"
stream = "transactional"
description = "A task was assigned to you"

[notification_types."account.password_reset"]
template = "task_assigned"
may_opt_out = false
description = "Password resets"
"""


@dataclass
class ApiService:
    """The running service, its keys and the watch over its answers."""

    url: str
    watch: SecretWatch
    admin_key: str
    send_key: str
    other_send_key: str
    revoked_key: str
    process: ServiceProcess
    env: dict[str, str]
    """The settings environment it runs with (for a ``mailroom`` command on its database)."""

    def client(self, key: str | None = None) -> httpx.Client:
        return api_client(self.url, self.watch, key)


@contextmanager
def running_api_service(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    more_settings: Mapping[str, str] | None = None,
) -> Iterator[ApiService]:
    """The service on ``database_url`` (default: a SQLite file in ``tmp_path``), with
    ``more_settings`` in its environment beside the ones it always has."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "task_assigned.subject.txt").write_text("{{ task }} for you")
    (templates / "task_assigned.txt").write_text("Hello, {{ task }} is yours.")
    database_url = database_url or f"sqlite:///{tmp_path / 'mailroom.db'}"
    config = tmp_path / "mailroom.toml"
    config.write_text(SETTINGS.format(database_url=database_url, templates=templates))
    password = "smtp-" + secrets.token_urlsafe(16)
    secret_key = secrets.token_urlsafe(40)
    env = {
        "MAILROOM_CONFIG": str(config),
        "EMAIL_HOST_PASSWORD": password,
        "SECRET_KEY": secret_key,
        "PUBLIC_BASE_URL": "https://mailroom.example",
        **(more_settings or {}),
    }
    settings = load_settings(environ=env)
    engine = create_outbox_engine(settings.DATABASE_URL)
    database.upgrade(engine)
    watch = SecretWatch([password, secret_key])
    now = time.time()
    with engine.begin() as connection:
        keys = [
            create_api_key(connection, name=name, scope=scope, now=now)
            for name, scope in (
                ("admin", ApiKeyScope.ADMIN),
                ("app", ApiKeyScope.SEND),
                ("other app", ApiKeyScope.SEND),
                ("old", ApiKeyScope.SEND),
            )
        ]
        revoke_api_key(connection, keys[3][0].prefix, now)
    engine.dispose()
    for _, plaintext in keys:
        watch.add(plaintext)
    with ServiceProcess(env, cwd=tmp_path, watch=watch) as process:
        yield ApiService(
            url=process.url,
            watch=watch,
            admin_key=keys[0][1],
            send_key=keys[1][1],
            other_send_key=keys[2][1],
            revoked_key=keys[3][1],
            process=process,
            env=env,
        )
    # Leaving the ServiceProcess checked its whole output against the same watch.

"""A real ``mailroom serve`` for the browser tests, with every secret the pages must not show.

It runs the capture transport (nothing leaves the machine) while its settings name an SMTP
relay with a user name and a password, so a page that showed the relay's settings carelessly
would show them. Its ``SECRET_KEY``, the admin's password, the SMTP user name and password,
and the API keys made in its database are all in :attr:`Site.watch`: no page, response or line
of its output may contain one of them.

The notifications it sends carry links to ``PUBLIC_BASE_URL`` (:data:`PUBLIC`), which
:meth:`Site.local` turns into links to the running service.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page

from mailroom.access.apikeys import create_api_key
from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.vocabulary import ApiKeyScope
from support.api_client import SecretWatch
from support.service import ServiceProcess

__all__ = ["PUBLIC", "Site", "login", "running_site"]

PUBLIC = "https://mail.acme.example"

SETTINGS = """\
DATABASE_URL = "{database_url}"
DEFAULT_FROM_EMAIL = "Acme <noreply@acme.example>"
EMAIL_TEMPLATE_DIRS = ["{templates}"]
WORKER_POLL_INTERVAL = 0.05

[notification_types."task.assigned"]
template = "task_assigned"
description = "Tasks assigned to you"

[notification_types."news.weekly"]
template = "task_assigned"
stream = "bulk"
description = "The weekly news"
"""


@dataclass
class Site:
    """The running service, the admin's credentials, an admin API key, and the watch."""

    process: ServiceProcess
    admin_user: str
    admin_password: str
    admin_key: str
    smtp_user: str

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def watch(self) -> SecretWatch:
        return self.process.watch

    def api(self) -> httpx.Client:
        """An API client with the admin key; every answer is checked for the secrets."""
        return self.process.client(self.admin_key, timeout=10.0)

    def local(self, public_url: str) -> str:
        """A ``PUBLIC_BASE_URL`` link of a message, as a URL of the running service."""
        assert public_url.startswith(PUBLIC + "/"), public_url
        return self.url + public_url.removeprefix(PUBLIC)

    def notify(self, type_name: str, to: str, **context: Any) -> int:
        """Send a notification through the API; its outbox id."""
        with self.api() as api:
            answer = api.post(
                "/api/v1/notifications", json={"type": type_name, "to": [to], "context": context}
            )
        assert answer.status_code == 201, answer.text
        (queued,) = answer.json()["queued"]
        return int(queued["id"])

    def captured(self, message_pk: int, timeout: float = 15.0) -> dict[str, Any]:
        """The captured copy of outbox message ``message_pk`` (parsed, as the API gives it),
        once the embedded worker has delivered it."""
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while True:
                items = api.get("/api/v1/captured", params={"limit": 50}).json()["items"]
                found = [item for item in items if item["message_pk"] == message_pk]
                if found:
                    detail = api.get(f"/api/v1/captured/{found[0]['id']}")
                    assert detail.status_code == 200, detail.text
                    return dict(detail.json())
                assert time.monotonic() < deadline, f"message {message_pk} was not captured"
                time.sleep(0.1)

    def unsubscribe_link(self, captured: dict[str, Any]) -> str:
        """The page link of a captured message's ``List-Unsubscribe``, on the running service."""
        header = next(v for k, v in captured["headers"] if k.lower() == "list-unsubscribe")
        match = re.search(rf"<({re.escape(PUBLIC)}/unsubscribe/[^>]+)>", header)
        assert match, header
        return self.local(match.group(1))


@contextmanager
def running_site(home: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Site]:
    """The service in folder ``home`` (its database, settings and templates live there);
    ``extra_env``: more settings for it, as environment variables."""
    templates = home / "templates"
    templates.mkdir()
    (templates / "task_assigned.subject.txt").write_text("{{ task }} for you")
    (templates / "task_assigned.html").write_text(
        "<html><body><p>Hello, <strong>{{ task }}</strong> is yours.</p></body></html>"
    )
    database_url = f"sqlite:///{home / 'mailroom.db'}"
    config = home / "mailroom.toml"
    config.write_text(SETTINGS.format(database_url=database_url, templates=templates))
    smtp_user = "relay-user-" + secrets.token_hex(8)
    admin_password = "admin-" + secrets.token_urlsafe(16)
    env = {
        "MAILROOM_CONFIG": str(config),
        "MAILROOM_TRANSPORT": "capture",
        "EMAIL_HOST": "smtp.relay.example",
        "EMAIL_PORT": "587",
        "EMAIL_USE_TLS": "true",
        "EMAIL_HOST_USER": smtp_user,
        "EMAIL_HOST_PASSWORD": "smtp-" + secrets.token_urlsafe(16),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "PUBLIC_BASE_URL": PUBLIC,
        "MAILROOM_ADMIN_USER": "admin",
        "MAILROOM_ADMIN_PASSWORD": admin_password,
        **(extra_env or {}),
    }
    engine = create_outbox_engine(load_settings(environ=env).DATABASE_URL)
    try:
        database.upgrade(engine)
        with engine.begin() as connection:
            _, admin_key = create_api_key(
                connection, name="browser tests", scope=ApiKeyScope.ADMIN, now=time.time()
            )
    finally:
        engine.dispose()
    watch = SecretWatch([smtp_user, admin_password, admin_key])
    # SECRET_KEY and the SMTP password are added by ServiceProcess, from the settings.
    with ServiceProcess(env, cwd=home, watch=watch) as process:
        yield Site(process, "admin", admin_password, admin_key, smtp_user)
        assert "Traceback" not in process.output, process.output


def login(page: Page, site: Site, password: str | None = None) -> None:
    """Sign in as the site's admin (with ``password`` instead, when given) on the login page,
    the one the page shows (with its ``next``) or a fresh one."""
    if urlsplit(page.url).path != "/admin/login":
        page.goto(f"{site.url}/admin/login")
    page.get_by_label("User name").fill(site.admin_user)
    page.get_by_label("Password").fill(site.admin_password if password is None else password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

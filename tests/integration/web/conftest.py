"""A real ``mailroom serve`` process for the public-endpoint tests, shared by a module: its
SQLite database, the settings both sides use, and a notifier in the test process that puts
messages in that database (as the application would)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine, select

from mailroom.compose.templates import Template
from mailroom.config import Settings, load_settings
from mailroom.notifications import NotificationRegistry, Notifier
from mailroom.outbox import database
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from support.service import ServiceProcess

SECRET = "public-endpoints-test-secret-0123456789-abcdef"
PUBLIC = "https://mail.acme.example"

SETTINGS_FILE = """\
[notification_types."task.assigned"]
template = "task_assigned"
description = "Tasks assigned to you"

[notification_types."news.weekly"]
template = "news"
stream = "bulk"
description = "The weekly news"

[notification_types."digest.monthly"]
template = "digest"
default_on = false
description = "A monthly digest"

[notification_types."account.password_reset"]
template = "password_reset"
may_opt_out = false
description = "Password resets"
"""

TASK_ASSIGNED = Template(
    "task_assigned",
    subject="You were assigned “{{ task }}”",
    html="<html><body><p>Hi {{ recipient.name }}, your new task: {{ task }}.</p></body></html>",
)
NEWS = Template(
    "news",
    subject="This week",
    html=(
        "<!DOCTYPE html><html><body><h1>News</h1>"
        '<p><a href="https://blog.example/post?id=7&amp;x=1">Read the post</a></p>'
        '<p><a href="mailto:editor@acme.example">Write to the editor</a></p>'
        '<p><a href="https://shop.example/">Visit the shop</a></p>'
        "</body></html>"
    ),
)


@dataclass
class Public:
    """The running service and what the tests need beside it."""

    service: ServiceProcess
    settings: Settings
    outbox: Outbox
    notifier: Notifier

    @property
    def engine(self) -> Engine:
        return self.outbox.engine

    def local(self, public_url: str) -> str:
        """A ``PUBLIC_BASE_URL`` link of a message, as a URL of the running service."""
        assert public_url.startswith(PUBLIC + "/"), public_url
        return self.service.url + public_url.removeprefix(PUBLIC)

    def client(self) -> httpx.Client:
        """A client with no cookie jar worth the name: every test request stands alone; every
        answer is checked for the service's secrets."""
        return self.service.client(timeout=10.0, follow_redirects=False)

    def wait_sent(self, pk: int, timeout: float = 10.0) -> None:
        """Until the embedded worker has delivered message ``pk``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as connection:
                status = connection.execute(
                    select(messages.c.status).where(messages.c.id == pk)
                ).scalar_one()
            if status == "sent":
                return
            time.sleep(0.05)
        raise AssertionError(f"message {pk} not sent within {timeout} s: {status}")


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Until ``check()`` holds (the hit writer flushes every second)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Public]:
    home = tmp_path_factory.mktemp("public")
    (home / "mailroom.toml").write_text(SETTINGS_FILE, encoding="utf-8")
    env = {
        "DATABASE_URL": f"sqlite:///{home / 'outbox.db'}",
        "SECRET_KEY": SECRET,
        "PUBLIC_BASE_URL": PUBLIC,
        "DEFAULT_FROM_EMAIL": "Acme <hello@acme.example>",
        "TRACK_OPENS": "bulk",
        "TRACK_CLICKS": "bulk",
        "TRACKING_IP": "truncate",
        "MAILROOM_TRANSPORT": "null",
        "WORKER_POLL_INTERVAL": "0.05",
    }
    settings = load_settings(home / "mailroom.toml", environ=env)
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    registry = NotificationRegistry()
    registry.register("task.assigned", template=TASK_ASSIGNED, description="Tasks assigned to you")
    registry.register("news.weekly", template=NEWS, stream="bulk", description="The weekly news")
    try:
        with ServiceProcess(env, cwd=home) as service:
            yield Public(service, settings, outbox, Notifier(outbox, registry))
            assert "Traceback" not in service.output, service.output
            assert service.watch.checked > 0  # the tests' answers went through the watch
    finally:
        outbox.dispose()

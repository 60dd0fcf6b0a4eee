"""A real ``mailroom serve`` for the admin page tests, and httpx clients signed in to it.

The service starts on a fresh SQLite database with the capture transport (the default), a
``SECRET_KEY``, an SMTP password and the first admin's password (``MAILROOM_ADMIN_PASSWORD``):
none of them may appear in any answer (every answer goes through the :class:`SecretWatch`).
The test process shares the database (as the application would), so it can put captured
mail or consent records there directly.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
from sqlalchemy import Engine

from mailroom.config import Settings, load_settings
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from support.api_client import SecretWatch
from support.service import ServiceProcess

__all__ = ["AdminService", "csrf_token", "running_admin_service", "table_rows"]

ADMIN_USER = "admin"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')

SETTINGS = """\
DATABASE_URL = "{database_url}"
DEFAULT_FROM_EMAIL = "Acme <noreply@acme.example>"
WORKER_POLL_INTERVAL = 0.05
"""


def csrf_token(html: str) -> str:
    """The CSRF token of the first form of an admin page."""
    found = _CSRF_FIELD.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def table_rows(html: str, table_class: str) -> list[list[str]]:
    """The text of each cell (``td`` and ``th``) of each body row of the first table whose
    class list holds ``table_class``; a page without that table has none."""
    reader = _TableReader(table_class)
    reader.feed(html)
    return reader.rows


@dataclass
class _Cells:
    rows: list[list[str]] = field(default_factory=list)
    cell: list[str] | None = None


class _TableReader(HTMLParser):
    def __init__(self, table_class: str) -> None:
        super().__init__()
        self.table_class = table_class
        self.depth = 0  # > 0 inside the wanted table's body
        self.done = False
        self.found = _Cells()

    @property
    def rows(self) -> list[list[str]]:
        return self.found.rows

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and not self.done and self.table_class in classes:
            self.depth = 1
        elif self.depth and tag == "tbody":
            self.depth = 2
        elif self.depth == 2 and tag == "tr":
            self.found.rows.append([])
        elif self.depth == 2 and tag in ("td", "th") and self.found.rows:
            self.found.cell = []

    def handle_endtag(self, tag: str) -> None:
        if self.depth == 2 and tag in ("td", "th") and self.found.cell is not None:
            self.found.rows[-1].append(" ".join("".join(self.found.cell).split()))
            self.found.cell = None
        elif self.depth and tag == "table":
            self.depth = 0
            self.done = True

    def handle_data(self, data: str) -> None:
        if self.found.cell is not None:
            self.found.cell.append(data)


@dataclass
class AdminService:
    """The running service, its settings and database, and how to sign in to it."""

    process: ServiceProcess
    settings: Settings
    engine: Engine
    password: str

    @property
    def url(self) -> str:
        return self.process.url

    def client(self) -> httpx.Client:
        """A client with no session (its every answer checked for secrets)."""
        return self.process.client(follow_redirects=False)

    def signed_in(self) -> httpx.Client:
        """A client signed in as the first admin (its cookie jar holds the session); close
        it when done (it has been used, so it cannot be entered as a context manager)."""
        client = self.client()
        form = client.get("/admin/login")
        assert form.status_code == 200, form.text
        answer = client.post(
            "/admin/login",
            data={
                "username": ADMIN_USER,
                "password": self.password,
                "csrf_token": csrf_token(form.text),
                "next": "/admin/",
            },
        )
        assert answer.status_code == 303, answer.text
        return client


@contextmanager
def running_admin_service(tmp_path: Path, extra_settings: str = "") -> Iterator[AdminService]:
    """The service on a fresh database; ``extra_settings`` (TOML) ends its settings file."""
    database_url = f"sqlite:///{tmp_path / 'mailroom.db'}"
    config = tmp_path / "mailroom.toml"
    config.write_text(SETTINGS.format(database_url=database_url) + extra_settings)
    password = "admin-" + secrets.token_urlsafe(16)
    env = {
        "MAILROOM_CONFIG": str(config),
        "EMAIL_HOST_PASSWORD": "smtp-" + secrets.token_urlsafe(16),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "PUBLIC_BASE_URL": "https://mailroom.example",
        "MAILROOM_ADMIN_PASSWORD": password,
    }
    settings = load_settings(environ=env)
    engine = create_outbox_engine(settings.DATABASE_URL)
    database.upgrade(engine)
    watch = SecretWatch([password])
    try:
        with ServiceProcess(env, cwd=tmp_path, watch=watch) as process:
            yield AdminService(process, settings, engine, password)
    finally:
        engine.dispose()

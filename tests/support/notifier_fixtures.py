"""Fixtures for notification and consent tests: an outbox on SQLite and PostgreSQL, a
registry, a notifier. A conftest imports the ones it needs (``from support.notifier_fixtures
import ...``).

Every message any test here leaves in an outbox is checked by ``assert_well_formed`` at
teardown (Date, Message-ID, From, MIME-Version, a text part, no line over 998 octets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailroom.compose.templates import Template
from mailroom.config import Settings, load_settings
from mailroom.notifications import NotificationRegistry, Notifier
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from support.mail_checks import assert_well_formed, stored_messages

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"

BASE_SETTINGS: dict[str, Any] = {
    "DEFAULT_FROM_EMAIL": "Acme <hello@acme.example>",
    "PUBLIC_BASE_URL": "https://acme.example",
    "FRONTEND_BASE_URL": "https://app.acme.example",
    "SECRET_KEY": SECRET,
    "EMAIL_SUBJECT_PREFIX": "[Acme] ",
    "UNSUBSCRIBE_EMAIL_ADDRESS": "unsubscribe@acme.example",
    "ADMINS": "Grace Hopper <grace@acme.example>",
}

TASK_ASSIGNED = Template(
    "task_assigned",
    subject=(
        "{% if actor %}{{ actor.name }} assigned you{% else %}You were assigned{% endif %}"
        " “{{ task.title }}”"
    ),
    html=(
        "<html><head><style>p { color: #333333; }</style></head><body>"
        "<p>Hi {{ recipient.name }},</p>"
        "<p>{{ actor.name if actor else 'Someone' }} assigned you <b>{{ task.title }}</b>.</p>"
        '{% if link %}<p><a href="{{ link }}">Open the task</a></p>{% endif %}'
        "</body></html>"
    ),
)
PASSWORD_RESET = Template(
    "password_reset",
    subject="Reset your password",
    text="Hi {{ recipient.name }},\n\nUse this code to reset your password: {{ code }}\n",
)
DIGEST = Template("digest", subject="Your weekly digest", text="{{ count }} things happened.\n")


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {**BASE_SETTINGS, "DATABASE_URL": database_url, **overrides}
        return load_settings(environ={}, **{k: v for k, v in values.items() if v is not None})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def outboxes(database_url: str) -> Iterator[list[Outbox]]:
    """Every outbox a test makes; each of their messages is checked at teardown (before the
    database, which this fixture depends on, is dropped)."""
    made: list[Outbox] = []
    yield made
    try:
        for box in made:
            for data in stored_messages(box.engine):
                assert_well_formed(data)
    finally:
        for box in made:
            box.dispose()


@pytest.fixture
def make_outbox(outboxes: list[Outbox]) -> Callable[[Settings], Outbox]:
    def make(settings: Settings) -> Outbox:
        box = Outbox(settings)
        database.upgrade(box.engine)
        outboxes.append(box)
        return box

    return make


@pytest.fixture
def outbox(make_outbox: Callable[[Settings], Outbox], settings: Settings) -> Outbox:
    return make_outbox(settings)


@pytest.fixture
def registry() -> NotificationRegistry:
    registry = NotificationRegistry()
    registry.register("task.assigned", template=TASK_ASSIGNED, description="Tasks assigned to you")
    registry.register(
        "account.password_reset", template=PASSWORD_RESET, may_opt_out=False, stream="transactional"
    )
    registry.register("digest.weekly", template=DIGEST, default_on=False, stream="bulk")
    return registry


@pytest.fixture
def notifier(outbox: Outbox, registry: NotificationRegistry) -> Notifier:
    return Notifier(outbox, registry)

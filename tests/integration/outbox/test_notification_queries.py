"""The stored templates' listing and deletion, and the notification log's counts per type and
outcome over a period, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.notification_queries import (
    delete_template,
    insert_notification_log,
    list_templates,
    outcome_counts,
    save_template,
)

NOW = 1_800_000_000.0


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def test_templates_are_listed_by_name_and_deleted(engine: Engine) -> None:
    with engine.begin() as connection:
        save_template(connection, "welcome", subject="Hi", html=None, text="t", now=NOW)
        save_template(connection, "a/digest", subject="D", html="<p>", text=None, now=NOW + 1)
    with engine.begin() as connection:
        assert [(row["name"], row["subject"]) for row in list_templates(connection)] == [
            ("a/digest", "D"),
            ("welcome", "Hi"),
        ]
        assert delete_template(connection, "welcome") is True
        assert delete_template(connection, "welcome") is False
        assert [row["name"] for row in list_templates(connection)] == ["a/digest"]


def test_outcomes_are_counted_per_type_since_a_time(engine: Engine) -> None:
    def row(kind: str, outcome: str, at: float) -> dict[str, object]:
        return {"at": at, "notification_type": kind, "recipient": "a@example.com",
                "outcome": outcome, "reason": None, "message_pk": None, "actor": None}  # fmt: skip

    with engine.begin() as connection:
        insert_notification_log(
            connection,
            [
                row("task.assigned", "queued", NOW - 10),
                row("task.assigned", "queued", NOW - 100),
                row("task.assigned", "skipped", NOW - 100),
                row("task.assigned", "queued", NOW - 1000),  # before the period
                row("account.reset", "suppressed", NOW - 100),
            ],
        )
    with engine.connect() as connection:
        assert outcome_counts(connection, since=NOW - 500) == {
            ("task.assigned", "queued"): 2,
            ("task.assigned", "skipped"): 1,
            ("account.reset", "suppressed"): 1,
        }
        assert outcome_counts(connection, since=NOW) == {}

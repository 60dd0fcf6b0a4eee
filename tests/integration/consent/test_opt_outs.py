"""Who turned a notification type off (what the admin's suppressions page lists beside the
suppression list), and one recipient's choices per type, with what made each."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from mailroom.config import load_settings
from mailroom.consent import set_email_preference
from mailroom.consent.listing import MAX_PAGE, recent_opt_outs, recipient_choices
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.consent.unsubscribe import unsubscribe
from mailroom.errors import MessageError
from mailroom.outbox.store import Outbox

T0 = 1_800_000_000.0


def opt_outs(outbox: Outbox, **options: Any) -> list[tuple[str, str, float, str | None]]:
    with outbox.engine.connect() as connection:
        found = recent_opt_outs(connection, limit=options.pop("limit", 10), **options)
    return [(c.recipient, c.notification_type, c.updated_at, c.source) for c in found]


def test_the_newest_opt_outs_first_with_what_made_them(outbox: Outbox) -> None:
    engine = outbox.engine
    set_email_preference(engine, "ada@example.com", "digest", False, source="api", now=T0)
    set_email_preference(engine, "bo@example.com", "digest", False, source="link", now=T0 + 1)
    set_email_preference(engine, "cy@example.com", "digest", True, source="api", now=T0 + 2)
    set_email_preference(engine, "user-42", "news", False, source="api", now=T0 + 3)
    # Turned off, then on again: no longer an opt-out.
    set_email_preference(engine, "di@example.com", "news", False, source="link", now=T0 + 4)
    set_email_preference(engine, "di@example.com", "news", True, source="preferences", now=T0 + 5)

    assert opt_outs(outbox) == [
        ("user-42", "news", T0 + 3, "api"),
        ("bo@example.com", "digest", T0 + 1, "link"),
        ("ada@example.com", "digest", T0, "api"),
    ]
    assert [row[0] for row in opt_outs(outbox, limit=2)] == ["user-42", "bo@example.com"]
    assert [row[0] for row in opt_outs(outbox, search="BO@")] == ["bo@example.com"]
    assert opt_outs(outbox, search="%") == []  # a piece of the address, no wildcard
    assert [row[0] for row in opt_outs(outbox, scope="type:news")] == ["user-42"]
    assert opt_outs(outbox, scope="all") == []  # a scope of no one type holds no opt-out
    assert opt_outs(outbox, scope="list:weekly") == []


def test_an_unsubscribe_link_is_the_source_of_its_opt_out(outbox: Outbox) -> None:
    settings = load_settings(
        environ={"SECRET_KEY": "k" * 40, "DATABASE_URL": str(outbox.engine.url)}
    )
    token = UnsubscribeTokens(settings).make("ed@example.com", "type:digest")
    unsubscribe(outbox.engine, settings, token, source="link", now=T0)
    assert opt_outs(outbox) == [("ed@example.com", "digest", T0, "link")]


@pytest.mark.parametrize("limit", [0, MAX_PAGE + 1])
def test_a_limit_out_of_range_is_refused(outbox: Outbox, limit: int) -> None:
    with outbox.engine.connect() as connection, pytest.raises(MessageError) as refused:
        recent_opt_outs(connection, limit=limit)
    assert refused.value.field == "limit"


def test_a_recipients_choices_by_type(outbox: Outbox) -> None:
    engine = outbox.engine
    set_email_preference(engine, "ada@example.com", "news", False, source="link", now=T0)
    set_email_preference(engine, "ada@example.com", "digest", True, source="api", now=T0 + 1)
    set_email_preference(engine, "bo@example.com", "news", False, source="api", now=T0 + 2)
    with engine.connect() as connection:
        choices = recipient_choices(connection, "ada@example.com")
        nobody = recipient_choices(connection, "zed@example.com")
    assert [(c.notification_type, c.email, c.updated_at, c.source) for c in choices] == [
        ("digest", True, T0 + 1, "api"),
        ("news", False, T0, "link"),
    ]
    assert nobody == []


def test_the_opt_outs_are_read_off_their_index(outbox: Outbox) -> None:
    for n in range(20):
        set_email_preference(outbox.engine, f"u{n}@example.com", "news", n % 2 == 0, now=T0 + n)
    executed: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    with outbox.engine.begin() as connection:
        event.listen(connection, "before_cursor_execute", keep)
        recent_opt_outs(connection, limit=5)
        event.remove(connection, "before_cursor_execute", keep)
        statement, parameters = next(run for run in executed if "mailroom_preferences" in run[0])
        if connection.dialect.name == "sqlite":
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        else:  # a table this small is scanned whatever its indexes, unless told not to
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        details = " ".join(str(row[-1]) for row in plan)
    assert "ix_mailroom_preferences_email_updated_at" in details, details
    assert "TEMP B-TREE" not in details, details  # SQLite: no sort of the matches
    assert "Sort" not in details, details  # PostgreSQL: nor there

"""The library behind the public unsubscribe endpoints, on a real outbox: one-click and
mailto unsubscribes change preferences or the suppression list and write the consent log."""

from __future__ import annotations

import re

import pytest

from mailroom.config import Settings
from mailroom.consent import queries as q
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.consent.unsubscribe import unsubscribe
from mailroom.errors import InvalidTokenError
from mailroom.notifications import Notifier, Recipient
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import ConsentAction, SuppressionReason
from support.mail_checks import parse, stored_messages

ZOE = Recipient("zoe@example.com", "Zoë", key="user:7")


def token_from_last_message(outbox: Outbox) -> str:
    header = parse(stored_messages(outbox.engine)[-1])["List-Unsubscribe"]
    match = re.search(r"/unsubscribe/([^>]+)>", header)
    assert match is not None
    return match.group(1)


def history(outbox: Outbox, recipient: str) -> list[tuple[str, str, str]]:
    with outbox.engine.connect() as connection:
        rows = q.consent_history(connection, recipient)
    return [(r["action"], r["scope"], r["source"]) for r in rows]


def test_one_click_turns_the_type_off_and_the_next_notification_is_skipped(
    notifier: Notifier, outbox: Outbox, settings: Settings
) -> None:
    notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    token = token_from_last_message(outbox)
    result = unsubscribe(outbox.engine, settings, token, detail={"user_agent": "Gmail one-click"})
    assert (result.recipient, result.scope) == ("zoe@example.com", "type:task.assigned")
    assert result.action is ConsentAction.PREFERENCE_CHANGED
    # Twice is harmless.
    unsubscribe(outbox.engine, settings, token)

    again = notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    assert again.skipped == {"zoe@example.com": "opted_out"}
    # Other types still reach her.
    assert notifier.notify("account.password_reset", to=[ZOE], context={"code": "1"}).outbox_ids
    assert history(outbox, "zoe@example.com") == [
        ("preference_changed", "type:task.assigned", "one_click"),
        ("preference_changed", "type:task.assigned", "one_click"),
    ]
    with outbox.engine.connect() as connection:
        (first, _) = q.consent_history(connection, "zoe@example.com")
    assert first["detail"]["user_agent"] == "Gmail one-click"
    assert first["detail"]["email"] is False
    assert "token_issued_at" in first["detail"]


def test_unsubscribe_from_everything_suppresses_the_address(
    notifier: Notifier, outbox: Outbox, settings: Settings
) -> None:
    token = UnsubscribeTokens(settings).make("Zoe@Example.com", "all")
    unsubscribe(
        outbox.engine, settings, token, source="mailto", expected_recipient="zoe@example.com"
    )
    with outbox.engine.connect() as connection:
        (entry,) = q.list_suppressions(connection, "zoe@example.com")
    assert (entry.scope, entry.reason) == ("all", SuppressionReason.UNSUBSCRIBED)
    result = notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    assert result.skipped == {"zoe@example.com": "unsubscribed"}
    assert history(outbox, "zoe@example.com") == [("unsubscribed", "all", "mailto")]


def test_invalid_tokens_change_nothing(outbox: Outbox, settings: Settings) -> None:
    token = UnsubscribeTokens(settings).make("zoe@example.com", "all")
    for bad in (token[:-2] + "xx", "not-a-token"):
        with pytest.raises(InvalidTokenError):
            unsubscribe(outbox.engine, settings, bad)
    with pytest.raises(InvalidTokenError):
        unsubscribe(outbox.engine, settings, token, expected_recipient="mallory@example.com")
    with outbox.engine.connect() as connection:
        assert q.list_suppressions(connection) == []
    assert history(outbox, "zoe@example.com") == []

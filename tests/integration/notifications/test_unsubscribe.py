"""The library behind the unsubscribe endpoints, the suppression list and the consent log,
on a real outbox; and the check a worker makes before delivery."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import update

from mailroom.compose.templates import Template
from mailroom.config import Settings
from mailroom.errors import InvalidTokenError
from mailroom.message import Message
from mailroom.notifications import Notifier, Recipient
from mailroom.outbox import notification_queries as q
from mailroom.outbox.schema import ConsentAction, Status, SuppressionReason, messages
from mailroom.outbox.store import Outbox
from mailroom.unsubscribe import (
    UnsubscribeTokens,
    list_scope,
    suppress,
    suppressed_for_messages,
    unsubscribe,
    unsuppress,
)
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


def test_suppress_and_unsuppress_are_logged(outbox: Outbox) -> None:
    suppress(outbox.engine, "Ada <ADA@example.com>", SuppressionReason.COMPLAINT, note="FBL")
    suppress(outbox.engine, "ada@example.com", SuppressionReason.MANUAL, scope=list_scope("news"))
    with outbox.engine.connect() as connection:
        entries = {(e.scope, e.reason) for e in q.list_suppressions(connection, "ada@example.com")}
    assert entries == {
        ("all", SuppressionReason.COMPLAINT),
        ("list:news", SuppressionReason.MANUAL),
    }
    assert unsuppress(outbox.engine, "ada@example.com") is True
    assert unsuppress(outbox.engine, "ada@example.com") is False
    assert history(outbox, "ada@example.com") == [
        ("suppressed", "all", "api"),
        ("suppressed", "list:news", "api"),
        ("unsuppressed", "all", "api"),
    ]


def test_suppressed_for_messages_at_delivery_time(notifier: Notifier, outbox: Outbox) -> None:
    """What a worker calls after claiming: suppressions made after enqueue still apply."""
    optional = notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    required = notifier.notify("account.password_reset", to=[ZOE], context={"code": "1"})
    plain = outbox.send(Message(to=["zoe@example.com", "bob@example.com"], subject="s", text="t"))
    ids = [*optional.outbox_ids, *required.outbox_ids, plain]
    now = time.time()

    with outbox.engine.connect() as connection:
        assert suppressed_for_messages(connection, ids, now) == {}
    suppress(outbox.engine, "zoe@example.com", SuppressionReason.UNSUBSCRIBED)
    with outbox.engine.connect() as connection:
        found = suppressed_for_messages(connection, ids, now)
    # Unsubscribed stops the optional notification only.
    assert found == {optional.outbox_ids[0]: {"zoe@example.com": SuppressionReason.UNSUBSCRIBED}}

    suppress(outbox.engine, "zoe@example.com", SuppressionReason.HARD_BOUNCE)
    with outbox.engine.connect() as connection:
        found = suppressed_for_messages(connection, ids, now)
    assert set(found) == set(ids)
    assert found[plain] == {"zoe@example.com": SuppressionReason.HARD_BOUNCE}  # bob is not


def test_suppressed_status_is_final(outbox: Outbox) -> None:
    message_pk = outbox.send(Message(to=["zoe@example.com"], subject="s", text="t"))
    with outbox.engine.begin() as connection:
        connection.execute(
            update(messages).where(messages.c.id == message_pk).values(status="suppressed")
        )
    stored = outbox.get(message_pk)
    assert stored is not None
    assert stored.status is Status.SUPPRESSED
    assert outbox.counts()["suppressed"] == 1


def test_stored_template_overrides_the_file(
    notifier: Notifier, outbox: Outbox, tmp_path: object
) -> None:
    notifier.templates.save(
        "password_reset", subject="Your code", text="Code {{ code }} — stored\n"
    )
    notifier.registry.register("account.stored", template="password_reset", may_opt_out=False)
    notifier.notify("account.stored", to=[ZOE], context={"code": "42"})
    message = parse(stored_messages(outbox.engine)[-1])
    assert message["Subject"] == "[Acme] Your code"
    assert "Code 42 — stored" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with pytest.raises(Exception, match="syntax error"):
        notifier.templates.save("broken", subject="{% if %}", text="x")
    assert notifier.templates.get("password_reset") == Template(
        "password_reset", "Your code", None, "Code {{ code }} — stored\n"
    )

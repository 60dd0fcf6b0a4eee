"""``notify`` end to end: composed, committed to a real outbox, parsed back from its bytes."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select

import mailroom
from mailroom.compose.templates import Template
from mailroom.config import Settings
from mailroom.consent.preferences import set_email_preference
from mailroom.consent.scopes import type_scope
from mailroom.consent.suppression import suppress
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.errors import (
    IdempotencyConflictError,
    NotificationError,
    SettingsError,
    TemplateError,
)
from mailroom.notifications import NotificationRegistry, Notifier, Recipient
from mailroom.outbox import database
from mailroom.outbox import notification_queries as q
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import NotificationOutcome, SuppressionReason
from support.mail_checks import assert_well_formed, html_part, parse, stored_messages, text_part

ZOE = Recipient("zoe@example.com", "Zoë Ünicode-Łukasiewicz", key="user:7")
ADA = Recipient("ada@example.com", "Ada Lovelace", key="user:1")


def only_message(outbox: Outbox) -> bytes:
    (data,) = stored_messages(outbox.engine)
    return data


def log_rows(outbox: Outbox) -> list[tuple[str, str, str | None]]:
    with outbox.engine.connect() as connection:
        rows = q.notification_outcomes(connection)
    return [(r["recipient"], r["outcome"], r["reason"]) for r in rows]


# -- the golden test ------------------------------------------------------------------------


def test_golden_full_notification(notifier: Notifier, outbox: Outbox, settings: Settings) -> None:
    result = notifier.notify(
        "task.assigned",
        to=[ZOE],
        actor=ADA,
        context={"task": {"title": "Fix the <script> tag & ship"}},
        link="/tasks/42",
    )
    assert [o.outcome for o in result.outcomes] == [NotificationOutcome.QUEUED]
    data = only_message(outbox)
    message = assert_well_formed(data)

    # Every header, in order, parsed back.
    names = [name for name, _ in message.items()]
    assert names == [
        "MIME-Version",
        "Content-Type",
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "X-Mailroom-Notification-Type",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    assert message.get_content_type() == "multipart/alternative"
    sender = message["From"].addresses[0]
    assert sender.display_name == "Ada Lovelace via Acme"
    assert re.fullmatch(r"noreply-[0-9a-f]{16}", sender.username), sender.username
    assert sender.domain == "acme.example"
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Zoë Ünicode-Łukasiewicz", "zoe@example.com")
    assert message["Subject"] == "[Acme] Ada Lovelace assigned you “Fix the <script> tag & ship”"
    assert re.fullmatch(r"<[0-9a-f]+\.[0-9a-f]{16}@acme\.example>", message["Message-ID"])
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Mailroom-Notification-Type"] == "task.assigned"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(
        r"<https://acme\.example/unsubscribe/([A-Za-z0-9_.\-]+)>, "
        r"<mailto:unsubscribe@acme\.example\?subject=unsubscribe%20([A-Za-z0-9_.\-]+)>",
        message["List-Unsubscribe"],
    )
    assert match is not None, message["List-Unsubscribe"]
    token = match.group(1)
    assert match.group(2) == token
    # Written raw, never as RFC 2047 encoded words, which no List-Unsubscribe reader decodes.
    raw_headers = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?" not in raw_headers.split(b"List-Unsubscribe:", 1)[1]
    claim = UnsubscribeTokens(settings).verify(token)
    assert (claim.recipient, claim.scope, claim.key) == (
        "zoe@example.com",
        "type:task.assigned",
        "user:7",
    )

    unsubscribe = f"https://acme.example/unsubscribe/{token}"
    assert text_part(message) == (
        "Hi Zoë Ünicode-Łukasiewicz,\n"
        "\n"
        "Ada Lovelace assigned you Fix the <script> tag & ship.\n"
        "\n"
        "Open the task (https://app.acme.example/tasks/42)\n"
        "\n"
        "-- \n"
        "You receive this because of your Acme email settings (Tasks assigned to you).\n"
        f"Unsubscribe or change your email settings: {unsubscribe}\n"
    )
    assert html_part(message) == (
        "<html><head></head><body>"
        '<p style="color: #333333;">Hi Zoë Ünicode-Łukasiewicz,</p>'
        '<p style="color: #333333;">Ada Lovelace assigned you '
        "<b>Fix the &lt;script&gt; tag &amp; ship</b>.</p>"
        '<p style="color: #333333;"><a href="https://app.acme.example/tasks/42">'
        "Open the task</a></p>"
        '<div class="mailroom-footer" style="margin-top:24px;padding-top:12px;'
        'border-top:1px solid #ddd;color:#666;font-size:12px">'
        "You receive this because of your Acme email settings (Tasks assigned to you).<br>"
        f'<a href="{unsubscribe}">Unsubscribe or change your email settings</a></div>'
        "</body></html>\n"
    )

    with outbox.engine.connect() as connection:
        row = connection.execute(select(messages)).one()
    assert row.stream == "transactional"
    assert row.recipients == ["zoe@example.com"]
    assert row.sender == sender.addr_spec
    assert row.extra == {"notification_type": "task.assigned"}
    assert row.consent_scopes == ["all", "type:task.assigned"]
    assert row.consent_required is False
    assert log_rows(outbox) == [("zoe@example.com", "queued", None)]


# -- headers and identity -------------------------------------------------------------------


def test_password_reset_has_no_list_unsubscribe_and_is_sent_to_opted_out(
    notifier: Notifier, outbox: Outbox
) -> None:
    # Even an "unsubscribed from everything" entry does not stop mail the recipient asked for.
    suppress(outbox.engine, "zoe@example.com", SuppressionReason.UNSUBSCRIBED)
    result = notifier.notify("account.password_reset", to=[ZOE], context={"code": "4711"})
    assert result.skipped == {}
    message = assert_well_formed(only_message(outbox))
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message
    assert message["X-Mailroom-Notification-Type"] == "account.password_reset"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["From"].addresses[0].display_name == "Acme"  # no actor
    text = text_part(message)
    assert "4711" in text
    assert "unsubscribe" not in text.lower()
    assert html_part(message) is None


def test_password_reset_is_stopped_by_a_hard_bounce(notifier: Notifier, outbox: Outbox) -> None:
    suppress(outbox.engine, "Zoe@Example.com", SuppressionReason.HARD_BOUNCE)
    result = notifier.notify("account.password_reset", to=[ZOE], context={"code": "1"})
    assert result.outbox_ids == []
    assert result.skipped == {"zoe@example.com": "hard_bounce"}
    assert log_rows(outbox) == [("zoe@example.com", "suppressed", "hard_bounce")]


def test_fixed_noreply_address_and_configured_header_name(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    settings = make_settings(
        ADD_TOKENS_TO_NOREPLY_ADDRESS="false",
        NOREPLY_EMAIL_ADDRESS="no-reply@mail.acme.example",
        NOTIFICATION_TYPE_HEADER="X-Acme-Kind",
        EMAIL_SUBJECT_PREFIX="",
    )
    box = make_outbox(settings)
    Notifier(box, registry).notify(
        "task.assigned", to=[ZOE], actor="Ada", context={"task": {"title": "T"}}
    )
    message = assert_well_formed(only_message(box))
    assert message["From"].addresses[0].addr_spec == "no-reply@mail.acme.example"
    assert message["From"].addresses[0].display_name == "Ada via Acme"
    assert message["X-Acme-Kind"] == "task.assigned"
    assert "X-Mailroom-Notification-Type" not in message
    assert message["Subject"] == "Ada assigned you “T”"


def test_tokenized_noreply_addresses_differ_per_message(notifier: Notifier, outbox: Outbox) -> None:
    notifier.notify(
        "task.assigned", to=[ZOE, "bob@example.com"], actor=ADA, context={"task": {"title": "T"}}
    )
    senders = {parse(d)["From"].addresses[0].addr_spec for d in stored_messages(outbox.engine)}
    assert len(senders) == 2


def test_without_public_or_frontend_url_links_are_left_out(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    settings = make_settings(PUBLIC_BASE_URL="", FRONTEND_BASE_URL="", SECRET_KEY="")
    box = make_outbox(settings)
    Notifier(box, registry).notify(
        "task.assigned", to=[ZOE], actor=ADA, context={"task": {"title": "T"}}, link="/tasks/1"
    )
    message = assert_well_formed(only_message(box))
    assert "List-Unsubscribe" not in message
    text = text_part(message)
    assert "Open the task" not in text
    assert "http" not in text
    assert "href" not in (html_part(message) or "")


def test_public_url_without_secret_key_names_the_setting(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    box = make_outbox(make_settings(SECRET_KEY=""))
    with pytest.raises(SettingsError) as info:
        Notifier(box, registry).notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    assert info.value.setting == "SECRET_KEY"
    assert "secret_key" in str(info.value)
    assert stored_messages(box.engine) == []


# -- preferences and skipped recipients -----------------------------------------------------


def test_default_off_type_reaches_only_opted_in_recipients(
    notifier: Notifier, outbox: Outbox
) -> None:
    set_email_preference(outbox.engine, "user:7", "digest.weekly", True)
    result = notifier.notify(
        "digest.weekly", to=[ZOE, ADA, "carol@example.com"], context={"count": 3}
    )
    assert [parse(d)["To"].addresses[0].addr_spec for d in stored_messages(outbox.engine)] == [
        "zoe@example.com"
    ]
    assert result.skipped == {
        "ada@example.com": "not_opted_in",
        "carol@example.com": "not_opted_in",
    }
    with outbox.engine.connect() as connection:
        assert connection.execute(select(messages.c.stream)).scalar_one() == "bulk"


def test_opted_out_recipient_is_skipped_and_recorded(notifier: Notifier, outbox: Outbox) -> None:
    set_email_preference(outbox.engine, "user:1", "task.assigned", False)
    result = notifier.notify("task.assigned", to=[ZOE, ADA], context={"task": {"title": "T"}})
    assert len(result.outbox_ids) == 1
    assert result.skipped == {"ada@example.com": "opted_out"}
    assert sorted(log_rows(outbox)) == [
        ("ada@example.com", "skipped", "opted_out"),
        ("zoe@example.com", "queued", None),
    ]


def test_preference_keyed_by_address_when_no_user_key(notifier: Notifier, outbox: Outbox) -> None:
    set_email_preference(outbox.engine, "carol@example.com", "task.assigned", False)
    result = notifier.notify(
        "task.assigned", to=["Carol <Carol@Example.com>"], context={"task": {"title": "T"}}
    )
    assert result.skipped == {"Carol@example.com": "opted_out"}


def test_recipients_may_not_turn_off_a_required_type(outbox: Outbox) -> None:
    with pytest.raises(NotificationError, match="may not turn"):
        set_email_preference(
            outbox.engine, "user:7", "account.password_reset", False, may_opt_out=False
        )


def test_skipped_recipients_are_recorded_and_the_call_does_not_fail(
    notifier: Notifier, outbox: Outbox
) -> None:
    @dataclass
    class User:
        email: str | None
        pk: int
        first: str

        def get_full_name(self) -> str:
            return f"{self.first} Example"

    suppress(outbox.engine, "dan@example.com", SuppressionReason.COMPLAINT)
    result = notifier.notify(
        "task.assigned",
        to=[
            User(None, 5, "Eve"),  # no address
            User("ada@example.com", 1, "Ada"),  # the actor
            "dan@example.com",  # suppressed
            ZOE,
            "ZOE@example.com",  # the same address again
            User("frank@example.com", 6, "Frank"),
        ],
        actor=User("ada@example.com", 1, "Ada"),
        context={"task": {"title": "T"}},
    )
    assert result.skipped == {
        "user:5": "no_address",
        "ada@example.com": "is_actor",
        "dan@example.com": "complaint",
        "ZOE@example.com": "duplicate",
    }
    assert len(result.outbox_ids) == 2
    recorded = {(r, o, why) for r, o, why in log_rows(outbox)}
    assert ("user:5", "skipped", "no_address") in recorded
    assert ("dan@example.com", "suppressed", "complaint") in recorded
    frank = [parse(d) for d in stored_messages(outbox.engine)][-1]
    assert frank["To"].addresses[0].display_name == "Frank Example"
    assert frank["From"].addresses[0].display_name == "Ada Example via Acme"


def test_unsubscribed_from_the_type_is_suppressed(notifier: Notifier, outbox: Outbox) -> None:
    suppress(
        outbox.engine,
        "zoe@example.com",
        SuppressionReason.UNSUBSCRIBED,
        scope=type_scope("task.assigned"),
    )
    result = notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    assert result.skipped == {"zoe@example.com": "unsubscribed"}
    assert stored_messages(outbox.engine) == []


def test_expired_suppression_no_longer_applies(notifier: Notifier, outbox: Outbox) -> None:
    suppress(outbox.engine, "zoe@example.com", SuppressionReason.MANUAL, expires_at=1.0)
    result = notifier.notify("task.assigned", to=[ZOE], context={"task": {"title": "T"}})
    assert len(result.outbox_ids) == 1


# -- fallback recipients, idempotency, errors -----------------------------------------------


def test_no_recipients_go_to_admins_and_fallback(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    settings = make_settings(EMAIL_FALLBACK_TO="ops@acme.example")
    box = make_outbox(settings)
    result = Notifier(box, registry).notify("task.assigned", context={"task": {"title": "T"}})
    assert len(result.outbox_ids) == 2
    sent = [assert_well_formed(d) for d in stored_messages(box.engine)]
    assert [m["To"].addresses[0].addr_spec for m in sent] == [
        "grace@acme.example",
        "ops@acme.example",
    ]
    # Mail to fallback recipients is not their subscription: no unsubscribe link.
    assert all("List-Unsubscribe" not in m for m in sent)
    assert "as an administrator" in text_part(sent[0])


def test_no_recipients_and_no_fallback_is_recorded(
    make_settings: Callable[..., Settings],
    make_outbox: Callable[[Settings], Outbox],
    registry: NotificationRegistry,
) -> None:
    box = make_outbox(make_settings(ADMINS=""))
    result = Notifier(box, registry).notify(
        "task.assigned", to=[], context={"task": {"title": "T"}}
    )
    assert result.outbox_ids == []
    assert log_rows(box) == [("", "skipped", "no_recipients")]


def test_idempotency_key_notifies_each_address_once(notifier: Notifier, outbox: Outbox) -> None:
    first = notifier.notify(
        "task.assigned", to=[ZOE], context={"task": {"title": "T"}}, idempotency_key="task-42"
    )
    again = notifier.notify(
        "task.assigned", to=[ZOE, ADA], context={"task": {"title": "T"}}, idempotency_key="task-42"
    )
    assert again.outbox_ids[0] == first.outbox_ids[0]
    assert len(stored_messages(outbox.engine)) == 2


def test_message_ids_is_the_deprecated_alias_of_outbox_ids(notifier: Notifier) -> None:
    result = notifier.notify("task.assigned", to=[ZOE, ADA], context={"task": {"title": "T"}})
    assert len(result.outbox_ids) == 2
    with pytest.warns(DeprecationWarning, match="renamed outbox_ids"):
        assert result.message_ids == result.outbox_ids


def test_unknown_type_and_missing_variable_are_clear_errors(
    notifier: Notifier, outbox: Outbox
) -> None:
    with pytest.raises(NotificationError, match=r"unknown notification type 'task\.asigned'"):
        notifier.notify("task.asigned", to=[ZOE])
    with pytest.raises(TemplateError, match="'task' is undefined") as info:
        notifier.notify("task.assigned", to=[ZOE], context={})
    assert info.value.template == "task_assigned"
    assert stored_messages(outbox.engine) == []


def test_long_user_text_is_bounded_and_wrapped(
    outbox: Outbox, registry: NotificationRegistry
) -> None:
    registry.register(
        "comment.mention",
        template=Template(
            "mention",
            subject="{{ actor.name }} mentioned you",
            text="{{ comment|snippet(300) }}\n",
            html="<p>{{ comment|snippet(300) }}</p>",
        ),
    )
    pasted = "https://example.com/" + "x" * 5000 + "\n" + "log line " * 2000
    Notifier(outbox, registry).notify(
        "comment.mention", to=[ZOE], actor=ADA, context={"comment": pasted}
    )
    message = assert_well_formed(only_message(outbox))
    body = text_part(message).split("\n-- \n")[0]
    assert all(len(line) <= 78 for line in body.splitlines())
    assert len(body) < 330
    assert body.rstrip().endswith("…")


def test_module_level_notify_uses_the_configured_outbox(
    settings: Settings, registry: NotificationRegistry
) -> None:
    from mailroom import notifications  # noqa: PLC0415

    notifications.default_registry.register(
        "test.module_level",
        template=Template("module_level", subject="Code", text="Your code: {{ code }}\n"),
        may_opt_out=False,
    )
    box = mailroom.configure(settings)
    database.upgrade(box.engine)
    try:
        result = mailroom.notify("test.module_level", to="ada@example.com", context={"code": "9"})
        assert len(result.outbox_ids) == 1
        assert "9" in text_part(assert_well_formed(only_message(box)))
        # The module-level call takes what Notifier.notify takes, and says so.
        parameters = inspect.signature(mailroom.notify).parameters
        assert list(parameters) == list(inspect.signature(Notifier.notify).parameters)[1:]
        assert mailroom.notify.__doc__ == Notifier.notify.__doc__
    finally:
        box.dispose()


# -- one recipient's failure is theirs alone ------------------------------------------------


def test_a_long_unbroken_task_title_is_delivered(notifier: Notifier, outbox: Outbox) -> None:
    """A title of one 3,000-character word cannot be folded at blanks (RFC 5322 §2.2.3): it
    goes in RFC 2047 encoded words, and reads back whole."""
    title = "x" * 3000
    result = notifier.notify("task.assigned", to=[ZOE, ADA], context={"task": {"title": title}})
    assert [o.outcome for o in result.outcomes] == [NotificationOutcome.QUEUED] * 2
    for data in stored_messages(outbox.engine):
        message = assert_well_formed(data)
        assert message["Subject"] == f"[Acme] You were assigned “{title}”"


def test_one_recipients_failure_does_not_fail_the_others(
    notifier: Notifier, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    long_name = Recipient("zoe@example.com", "Zoë " * 80, key="user:7")  # over 256 bytes
    result = notifier.notify(
        "task.assigned",
        to=[long_name, "not an address", "Bob <bob@example.com", ADA],
        context={"task": {"title": "T"}},
    )
    assert result.skipped == {
        "zoe@example.com": "invalid_address",
        "not an address": "invalid_address",
        "Bob <bob@example.com": "invalid_address",
    }
    assert len(result.outbox_ids) == 1
    assert parse(only_message(outbox))["To"].addresses[0].addr_spec == "ada@example.com"
    assert ("not an address", "skipped", "invalid_address") in log_rows(outbox)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("missing the '>'" in line for line in warnings), warnings


def test_a_template_failing_for_one_recipient_skips_only_them(
    outbox: Outbox, registry: NotificationRegistry
) -> None:
    registry.register(
        "test.initials",
        template=Template("initials", subject="Hi", text="Your initial: {{ recipient.name[4] }}\n"),
        may_opt_out=False,
    )
    result = Notifier(outbox, registry).notify(
        "test.initials", to=[ADA, Recipient("bo@example.com", "Bo")]
    )
    assert result.skipped == {"bo@example.com": "invalid_message"}
    assert "Your initial: L" in text_part(parse(only_message(outbox)))


def test_bidi_overrides_are_dropped_from_names_taken_from_app_data(
    notifier: Notifier, outbox: Outbox
) -> None:
    spoofer = Recipient("zoe@example.com", "Zoe \u202emoc.elgoog\u202c", key="user:7")
    result = notifier.notify(
        "task.assigned", to=[spoofer], actor="Ada\u2066 Lovelace", context={"task": {"title": "T"}}
    )
    assert len(result.outbox_ids) == 1
    message = parse(only_message(outbox))
    assert message["To"].addresses[0].display_name == "Zoe moc.elgoog"
    assert message["From"].addresses[0].display_name == "Ada Lovelace via Acme"


def test_idempotency_key_with_a_different_request_is_skipped_for_that_address(
    notifier: Notifier, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = notifier.notify(
        "task.assigned", to=[ZOE], context={"task": {"title": "T"}}, idempotency_key="task-42"
    )
    # A retry a while later: new unsubscribe token (signed with the time), new noreply
    # token, the same request.
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: 4_000_000_000)
    again = notifier.notify(
        "task.assigned", to=[ZOE], context={"task": {"title": "T"}}, idempotency_key="task-42"
    )
    assert again.outbox_ids == first.outbox_ids
    changed = notifier.notify(
        "task.assigned",
        to=[ZOE, ADA],
        context={"task": {"title": "Another task"}},
        idempotency_key="task-42",
    )
    assert changed.skipped == {"zoe@example.com": "idempotency_conflict"}
    assert len(changed.outbox_ids) == 1
    with pytest.raises(IdempotencyConflictError):  # the only recipient: the caller is told
        notifier.notify(
            "task.assigned", to=[ZOE], context={"task": {"title": "U"}}, idempotency_key="task-42"
        )
    assert len(stored_messages(outbox.engine)) == 2

"""One recipient's message, composed without a notifier or an outbox: template variables,
headers, sender, footer and the unsubscribe link."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mailroom.compose.footer import Footer
from mailroom.compose.personalize import personalize
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.config import Settings, load_settings
from mailroom.errors import MessageError
from mailroom.message import Address, Message

TEMPLATE = Template(
    "greeting",
    subject="Hello {{ recipient.name }}",
    text=(
        "{{ actor.name if actor else 'Someone' }} wrote to {{ recipient.email }} about "
        "{{ topic }} ({{ notification_type }}, {{ app_name }}); link={{ link }}; "
        "unsubscribe={{ unsubscribe_url }}\n"
    ),
)
ZOE = Address.parse("Zoë <zoe@example.com>")


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        environ={},
        DEFAULT_FROM_EMAIL="Acme <hi@acme.example>",
        EMAIL_SUBJECT_PREFIX="[Acme] ",
        FRONTEND_BASE_URL="https://app.acme.example",
        PUBLIC_BASE_URL="https://acme.example",
        UNSUBSCRIBE_EMAIL_ADDRESS="unsubscribe@acme.example",
    )


def footer(app: str, unsubscribe_link: str | None) -> Footer:
    return Footer(f"Sent by {app}.", "Unsubscribe", unsubscribe_link)


def compose(settings: Settings, **options: Any) -> Message:
    """Zoë's message of TEMPLATE about tea, with ``options`` for personalize."""
    return personalize(
        TemplateLibrary(),
        TEMPLATE,
        {"topic": "tea"},
        to=ZOE,
        settings=settings,
        type_name="note.sent",
        footer=footer,
        **options,
    )


def test_one_recipients_message(settings: Settings) -> None:
    message = compose(
        settings,
        unsubscribe_token="TOKEN",
        actor_name="Ada Lovelace",
        link="/notes/7",
        metadata={"note": 7},
    )
    url = "https://acme.example/unsubscribe/TOKEN"
    assert message.to == [ZOE]
    assert message.subject == "[Acme] Hello Zoë"
    assert message.text is not None
    assert message.text.startswith(
        "Ada Lovelace wrote to zoe@example.com about tea (note.sent, Acme); "
        f"link=https://app.acme.example/notes/7; unsubscribe={url}\n"
    )
    assert message.text.endswith(f"\n-- \nSent by Acme.\nUnsubscribe: {url}\n")
    assert message.headers == {
        "Auto-Submitted": "auto-generated",
        settings.NOTIFICATION_TYPE_HEADER: "note.sent",
        "List-Unsubscribe": (
            f"<{url}>, <mailto:unsubscribe@acme.example?subject=unsubscribe%20TOKEN>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    sender = message.from_email
    assert isinstance(sender, Address)
    assert sender.display_name == "Ada Lovelace via Acme"
    assert re.fullmatch(r"noreply-[0-9a-f]{16}@acme\.example", sender.addr_spec)
    assert message.metadata == {"note": 7}


def test_without_a_token_there_is_no_unsubscribe(settings: Settings) -> None:
    message = compose(settings)
    assert "List-Unsubscribe" not in message.headers
    assert message.text is not None
    assert "Someone wrote" in message.text
    assert "link=None; unsubscribe=None" in message.text
    assert message.text.endswith("\n-- \nSent by Acme.\n")
    assert isinstance(message.from_email, Address)
    assert message.from_email.display_name == "Acme"


def test_a_full_url_as_link_is_this_recipients_error(settings: Settings) -> None:
    with pytest.raises(MessageError, match="must be a path in the app"):
        compose(settings, link="https://evil.example/")

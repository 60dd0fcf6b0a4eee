"""Header helpers: subject prefix, sender identity, noreply tokens, Auto-Submitted."""

from __future__ import annotations

import re

from mailroom.compose import headers
from mailroom.config import load_settings
from mailroom.message import Address, Message, build_envelope
from support.mail_checks import assert_well_formed


def test_subject_prefix_is_added_once() -> None:
    assert headers.prefixed_subject("[Acme] ", "Hello") == "[Acme] Hello"
    assert headers.prefixed_subject("[Acme] ", "[Acme] Hello") == "[Acme] Hello"
    assert headers.prefixed_subject("", "Hello") == "Hello"


def test_sender_identity() -> None:
    assert headers.sender_display_name("Acme", "Ada  Lovelace") == "Ada Lovelace via Acme"
    assert headers.sender_display_name("Acme", None) == "Acme"
    assert headers.app_name(Address.parse("Acme <hi@acme.example>")) == "Acme"
    assert headers.app_name(Address.parse("hi@acme.example")) == "acme.example"


def test_noreply_addresses() -> None:
    noreply = Address.parse("noreply@acme.example")
    tokenized = headers.noreply_sender(noreply, "Zoë via Acme", tokenized=True)
    assert re.fullmatch(r"noreply-[0-9a-f]{16}@acme\.example", tokenized.addr_spec)
    assert tokenized.display_name == "Zoë via Acme"
    assert headers.noreply_sender(noreply, "x", tokenized=True) != tokenized
    fixed = headers.noreply_sender(noreply, "Acme", tokenized=False)
    assert fixed.addr_spec == "noreply@acme.example"
    long_local = Address.parse("n" * 64 + "@acme.example")
    assert len(headers.noreply_sender(long_local, "", tokenized=True).local_part) == 64


def test_headers_survive_building_and_parsing() -> None:
    token = "A" * 150 + ".B.C"
    url = "https://acme.example/unsubscribe/" + token
    settings = load_settings(
        environ={},
        PUBLIC_BASE_URL="https://acme.example",
        UNSUBSCRIBE_EMAIL_ADDRESS="unsubscribe@acme.example",
    )
    extra = {
        **headers.auto_submitted(),
        **headers.notification_type("X-Mailroom-Notification-Type", "task.assigned"),
        **headers.list_unsubscribe(settings, token),
    }
    envelope = build_envelope(
        Message(to=["ada@example.com"], subject="s", text="t", headers=extra),
        default_from="hi@acme.example",
    )
    message = assert_well_formed(envelope.data)
    for name, value in extra.items():
        assert message[name] == value
    assert message["List-Unsubscribe"].startswith(f"<{url}>, <mailto:unsubscribe@acme.example?")
    assert "subject=unsubscribe%20" + "A" * 150 in message["List-Unsubscribe"]

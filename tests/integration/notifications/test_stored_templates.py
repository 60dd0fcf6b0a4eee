"""Stored templates through ``notify``: a template saved in the database overrides the file."""

from __future__ import annotations

import pytest

from mailroom.compose.templates import Template
from mailroom.notifications import Notifier, Recipient
from mailroom.outbox.store import Outbox
from support.mail_checks import parse, stored_messages

ZOE = Recipient("zoe@example.com", "Zoë", key="user:7")


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

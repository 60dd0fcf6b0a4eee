"""Message-IDs: unique, in the sender's domain or, for an unqualified one, the machine's."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from mailroom import domains as our_domains
from mailroom.message import Message, make_message_id, message_id_domain
from support.envelopes import build, parse


def test_message_id_domain_is_the_senders_idna_domain() -> None:
    envelope = build(Message(to=["a@example.com"], from_email="shop@bücher.example", text="x"))
    assert envelope.message_id.endswith("@xn--bcher-kva.example>")
    assert parse(envelope)["Message-ID"] == envelope.message_id


@pytest.fixture
def machine_named(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Make ``socket.getfqdn()`` say ``name``, asked afresh."""

    def name_it(name: str) -> None:
        monkeypatch.setattr(socket, "getfqdn", lambda *_: name)
        our_domains.forget_machine_fqdn()

    yield name_it
    our_domains.forget_machine_fqdn()


def test_message_id_domain_is_the_senders_when_the_machine_is_localhost(
    machine_named: Callable[[str], None],
) -> None:
    machine_named("localhost")
    envelope = build(Message(to=["a@example.com"], text="x"))
    assert envelope.message_id.endswith("@example.com>")


@pytest.mark.parametrize("sender", ["webmaster@localhost", "app@web1", "ops@localhost.localdomain"])
def test_an_unqualified_sender_domain_gives_the_machines_qualified_name(
    machine_named: Callable[[str], None], sender: str
) -> None:
    machine_named("mail.example.net")
    envelope = build(Message(to=["a@example.com"], text="x", from_email=sender))
    assert re.fullmatch(r"<[^<>@\s]+@mail\.example\.net>", envelope.message_id)
    assert parse(envelope)["From"] == sender  # only the id changes, never the sender


@pytest.mark.parametrize("domain", ["bücher.example", "BÜCHER.example", "xn--bcher-kva.example"])
def test_an_idn_sender_domain_is_qualified_in_its_ascii_form(
    machine_named: Callable[[str], None], domain: str
) -> None:
    machine_named("mail.example.net")
    assert message_id_domain(domain).lower() == "xn--bcher-kva.example"
    assert make_message_id(domain).lower().endswith("@xn--bcher-kva.example>")


def test_with_no_qualified_name_anywhere_the_senders_domain_stays(
    machine_named: Callable[[str], None],
) -> None:
    machine_named("localhost")
    envelope = build(Message(to=["a@example.com"], text="x", from_email="webmaster@localhost"))
    assert envelope.message_id.endswith("@localhost>")


def test_a_machine_name_lookup_that_hangs_costs_one_short_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def hanging_getfqdn(*_: object) -> str:
        release.wait(10)
        return "mail.example.net"

    monkeypatch.setattr(socket, "getfqdn", hanging_getfqdn)
    our_domains.forget_machine_fqdn()
    try:
        started = time.monotonic()
        ids = [
            build(Message(to=["a@example.com"], text="x", from_email="app@web1")).message_id
            for _ in range(20)
        ]
        assert time.monotonic() - started < 3  # one wait of at most a second, not twenty
        assert all(i.endswith("@web1>") for i in ids)
        release.set()
        deadline = time.monotonic() + 5
        while our_domains.machine_fqdn_once() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        after = build(Message(to=["a@example.com"], text="x", from_email="app@web1"))
        assert after.message_id.endswith("@mail.example.net>")  # the answer, once it came
    finally:
        release.set()
        our_domains.forget_machine_fqdn()


def test_message_ids_are_unique() -> None:
    ids = {build(Message(to=["a@example.com"], text="x")).message_id for _ in range(200)}
    assert len(ids) == 200


def test_given_message_id_and_date_are_kept() -> None:
    date = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
    envelope = build(
        Message(to=["a@example.com"], text="x", message_id="<fixed@example.org>", date=date)
    )
    parsed = parse(envelope)
    assert envelope.message_id == "<fixed@example.org>"
    assert parsed["Message-ID"] == "<fixed@example.org>"
    assert parsed["Date"].datetime == date

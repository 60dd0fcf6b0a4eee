"""The EHLO name: a qualified FQDN, else an address literal of our end (RFC 5321 §4.1.4, §4.1.3).

A machine whose ``socket.getfqdn()`` says ``localhost`` (many containers and laptops) used to
greet with it, and relays that insist on a qualified name refused every message. Each test
sends through a real aiosmtpd server that records the EHLO argument it was given.
"""

from __future__ import annotations

import socket
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from click.testing import CliRunner

from mailroom.cli import main
from mailroom.config import SETTING_NAMES
from mailroom.message import Envelope as MailEnvelope
from mailroom.transports.ehlo import EhloSource, address_literal, is_qualified
from mailroom.transports.smtp import SMTPTransport
from support.smtp_server import ScriptedHandler, ServerFactory
from support.stalling_relay import StallingRelay
from support.tls_files import TLSFiles


@dataclass
class EhloRecorder(ScriptedHandler):
    ehlo_names: list[str] = field(default_factory=list)

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.ehlo_names.append(hostname)
        return await super().handle_EHLO(server, session, envelope, hostname, responses)


def machine_name(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Make ``socket.getfqdn()`` say ``name``; the list has the thread of each call made by
    the client side (aiosmtpd's server asks too, for its own greeting: not counted)."""
    calls: list[str] = []

    def getfqdn(_name: str = "") -> str:
        if not any("aiosmtpd" in frame.filename for frame in traceback.extract_stack()):
            calls.append(threading.current_thread().name)
        return name

    monkeypatch.setattr(socket, "getfqdn", getfqdn)
    return calls


def note() -> MailEnvelope:
    return MailEnvelope(
        sender="shop@example.com",
        recipients=("ada@example.com",),
        data=b"Subject: hi\r\nMessage-ID: <hi@example.com>\r\n\r\nhello\r\n",
        message_id="<hi@example.com>",
    )


@pytest.mark.parametrize("fqdn", ["localhost", "myhost", "localhost.localdomain", "10.0.0.7"])
async def test_an_unqualified_machine_name_gives_an_address_literal(
    monkeypatch: pytest.MonkeyPatch, smtp_server_factory: ServerFactory, fqdn: str
) -> None:
    machine_name(monkeypatch, fqdn)
    handler = EhloRecorder()
    server = smtp_server_factory(handler=handler)
    transport = SMTPTransport(host="127.0.0.1", port=server.port, timeout=5)
    await transport.send(note())
    await transport.close()
    assert handler.ehlo_names == ["[127.0.0.1]"]
    assert transport.ehlo_name is not None
    assert transport.ehlo_name.source is EhloSource.ADDRESS_LITERAL
    assert transport.ehlo_name.fqdn == fqdn


async def test_the_address_literal_is_given_again_after_starttls(
    monkeypatch: pytest.MonkeyPatch, smtp_server_factory: ServerFactory, tls: TLSFiles
) -> None:
    machine_name(monkeypatch, "localhost")
    handler = EhloRecorder()
    server = smtp_server_factory("starttls", handler=handler)
    transport = SMTPTransport(
        host="127.0.0.1", port=server.port, timeout=5, use_tls=True, cafile=tls.ca_path
    )
    await transport.send(note())
    await transport.close()
    assert handler.ehlo_names == ["[127.0.0.1]", "[127.0.0.1]"]  # RFC 3207 §4.2: EHLO again


async def test_a_qualified_machine_name_is_used_and_looked_up_once(
    monkeypatch: pytest.MonkeyPatch, smtp_server_factory: ServerFactory
) -> None:
    calls = machine_name(monkeypatch, "mail-1.example.com")
    handler = EhloRecorder()
    server = smtp_server_factory(handler=handler, timeout=0.3)  # drops idle connections
    transport = SMTPTransport(host="127.0.0.1", port=server.port, timeout=5)
    await transport.send(note())
    transport._session.abort()  # type: ignore[union-attr]  # a second connection follows
    await transport.send(note())
    await transport.close()
    assert handler.ehlo_names == ["mail-1.example.com", "mail-1.example.com"]
    assert transport.ehlo_name is not None
    assert transport.ehlo_name.source is EhloSource.FQDN
    assert calls == ["mailroom-getfqdn"]


async def test_email_local_hostname_wins_and_the_machine_is_not_asked(
    monkeypatch: pytest.MonkeyPatch, smtp_server_factory: ServerFactory
) -> None:
    calls = machine_name(monkeypatch, "localhost")
    handler = EhloRecorder()
    server = smtp_server_factory(handler=handler)
    transport = SMTPTransport(
        host="127.0.0.1", port=server.port, timeout=5, local_hostname="app.example.org"
    )
    await transport.send(note())
    await transport.close()
    assert handler.ehlo_names == ["app.example.org"]
    assert calls == []


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_over_ipv6_the_literal_is_tagged(monkeypatch: pytest.MonkeyPatch) -> None:
    machine_name(monkeypatch, "localhost")
    async with StallingRelay(None, host="::1") as relay:
        transport = SMTPTransport(host="::1", port=relay.port, timeout=5)
        await transport.send(note())
        await transport.close()
    assert relay.ehlo_names == ["[IPv6:::1]"]


@pytest.mark.parametrize(
    ("name", "qualified"),
    [
        ("mail.example.com", True),
        ("mail.example.com.", True),
        ("a-b.c-d.example", True),
        ("localhost", False),
        ("LOCALHOST.localdomain", False),
        ("myhost", False),
        ("192.0.2.1", False),
        ("-bad.example.com", False),
        ("bad-.example.com", False),
        ("under_score.example.com", False),
        ("", False),
    ],
)
def test_is_qualified(name: str, qualified: bool) -> None:
    assert is_qualified(name) is qualified


@pytest.mark.parametrize(
    ("sockname", "literal"),
    [
        (("192.0.2.1", 52000), "[192.0.2.1]"),
        (("2001:db8:0:0::1", 52000, 0, 0), "[IPv6:2001:db8::1]"),
        (("::ffff:192.0.2.1", 52000, 0, 0), "[192.0.2.1]"),
        (("fe80::1%eth0", 52000, 0, 2), "[IPv6:fe80::1]"),
    ],
)
def test_address_literal(sockname: Any, literal: str) -> None:
    assert address_literal(sockname) == literal


def test_send_test_email_says_which_ehlo_name_it_used(
    monkeypatch: pytest.MonkeyPatch, smtp_server_factory: ServerFactory, tmp_path: Path
) -> None:
    machine_name(monkeypatch, "localhost")
    handler = EhloRecorder()
    server = smtp_server_factory(handler=handler)
    config = tmp_path / "mailroom.toml"
    config.write_text(
        f'EMAIL_HOST = "127.0.0.1"\nEMAIL_PORT = {server.port}\n'
        'DEFAULT_FROM_EMAIL = "app@example.com"\nEMAIL_TIMEOUT = 5\n'
    )
    clean: dict[str, str | None] = dict.fromkeys(
        (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    )
    result = CliRunner().invoke(
        main, ["send-test-email", "--config", str(config), "ops@example.com"], env=clean
    )
    assert result.exit_code == 0, result.output
    assert handler.ehlo_names == ["[127.0.0.1]"]
    [line] = [line for line in result.output.splitlines() if "EHLO name" in line]
    assert "EHLO name: [127.0.0.1]" in line
    assert "'localhost' is not fully qualified" in line
    assert "EMAIL_LOCAL_HOSTNAME" in line

"""The SMTP transport against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
from pathlib import Path
from typing import Any

import pytest

from mailroom.errors import (
    AuthenticationError,
    AuthNotOfferedError,
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    PermanentError,
    RelayUnreachableError,
    SenderRefusedError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TLSError,
    TransientError,
    TransportSetupError,
    Verdict,
)
from mailroom.message import Envelope, Message, build_envelope
from mailroom.transports import SMTPTransport
from support.smtp_server import (
    TEST_PASSWORD,
    TEST_USER,
    ScriptedHandler,
    ServerFactory,
    SMTPTestServer,
)
from support.tls_files import TLSFiles


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def smtp_server_factory(
    request: pytest.FixtureRequest, smtp_server_factory: ServerFactory
) -> ServerFactory:
    """Every test here runs against a relay without and with PIPELINING (RFC 2920): the
    transport takes a different path for each, and both must behave the same."""
    pipelining: bool = request.param

    def start(
        mode: str = "plain", *, handler: ScriptedHandler | None = None, **kwargs: Any
    ) -> SMTPTestServer:
        handler = handler or ScriptedHandler()
        handler.pipelining = pipelining
        return smtp_server_factory(mode, handler=handler, **kwargs)

    return start


def envelope(to: str | list[str] = "bob@example.com", subject: str = "Hello") -> Envelope:
    recipients = [to] if isinstance(to, str) else to
    return build_envelope(
        Message(to=recipients, subject=subject, text="Hi Bob,\n\nA test.\n"),
        default_from="Ada <ada@example.com>",
    )


def transport_for(server: SMTPTestServer, **kwargs: Any) -> SMTPTransport:
    return SMTPTransport(host="127.0.0.1", port=server.port, timeout=5, **kwargs)


async def test_plain_delivery_reaches_the_server(smtp_server: SMTPTestServer) -> None:
    env = envelope(["bob@example.com", "carol@example.com"])
    async with transport_for(smtp_server) as transport:
        result = await transport.send(env)

    assert result.accepted == ("bob@example.com", "carol@example.com")
    assert str(result.reply).startswith("250")
    [received] = smtp_server.scripted.received
    assert received.mail_from == "ada@example.com"
    assert received.rcpt_tos == ["bob@example.com", "carol@example.com"]
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert parsed["Message-ID"] == env.message_id
    assert parsed["Subject"] == "Hello"


async def test_starttls_with_verified_certificate(
    smtp_server_factory: ServerFactory, tls: TLSFiles
) -> None:
    server = smtp_server_factory("starttls", require_starttls=True)
    async with transport_for(server, use_tls=True, cafile=tls.ca_path) as transport:
        await transport.send(envelope())
    assert len(server.scripted.received) == 1


async def test_implicit_tls(smtp_server_factory: ServerFactory, tls: TLSFiles) -> None:
    server = smtp_server_factory("implicit")
    async with transport_for(server, use_ssl=True, cafile=tls.ca_path) as transport:
        await transport.send(envelope())
    assert len(server.scripted.received) == 1


async def test_untrusted_certificate_is_a_tls_configuration_error(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory("starttls")
    transport = transport_for(server, use_tls=True)  # system CAs do not know our test CA
    with pytest.raises(TLSError, match="certificate") as caught:
        await transport.send(envelope())
    assert caught.value.verdict is Verdict.CONFIGURATION


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_mechanism_offered_by_the_server(
    smtp_server_factory: ServerFactory, tls: TLSFiles, mechanism: str
) -> None:
    others = [m for m in ("PLAIN", "LOGIN") if m != mechanism]
    server = smtp_server_factory(
        "starttls", auth=True, auth_required=True, auth_exclude_mechanism=others
    )
    transport = transport_for(
        server, use_tls=True, cafile=tls.ca_path, username=TEST_USER, password=TEST_PASSWORD
    )
    async with transport:
        await transport.send(envelope())
    assert server.scripted.auth_mechanisms_used == [mechanism]
    assert len(server.scripted.received) == 1


async def test_wrong_password_is_a_configuration_error(
    smtp_server_factory: ServerFactory, tls: TLSFiles
) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    wrong = "wrong-" + TEST_PASSWORD
    transport = transport_for(
        server, use_tls=True, cafile=tls.ca_path, username=TEST_USER, password=wrong
    )
    with pytest.raises(AuthenticationError) as caught:
        await transport.send(envelope())
    error = caught.value
    assert wrong not in f"{error} {error!r} {error.args} {vars(error)}"
    assert error.verdict is Verdict.CONFIGURATION
    assert error.code == 535
    assert error.stage is SMTPStage.AUTH
    assert server.scripted.received == []


async def test_credentials_without_auth_offered_is_not_a_refused_login(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    transport = transport_for(server, username=TEST_USER, password=TEST_PASSWORD)
    with pytest.raises(AuthNotOfferedError, match="may offer AUTH over TLS") as caught:
        await transport.send(envelope())
    assert caught.value.stage is SMTPStage.AUTH
    assert caught.value.code is None  # the relay refused nothing
    assert server.scripted.auth_mechanisms_used == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_auth_over_plain_connection_where_server_allows_it(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory("plain", auth=True, auth_required=True)
    transport = transport_for(server, username=TEST_USER, password=TEST_PASSWORD)
    async with transport:
        await transport.send(envelope())
    assert len(server.scripted.received) == 1


# The class and verdict of the error, and the refusals ("COMMAND reply") that give it.
REFUSALS: dict[tuple[type[DeliveryError], Verdict], list[str]] = {
    (TransientError, Verdict.TRANSIENT): [
        "MAIL 421 4.3.2 shutting down",
        "MAIL 451 4.3.0 try again later",
        "RCPT 450 4.2.1 mailbox busy",
        "RCPT 452 4.2.2 mailbox full",
        "DATA 451 4.3.0 local error",
    ],
    (SenderRefusedError, Verdict.CONFIGURATION): [
        "MAIL 550 5.7.1 sender not allowed",
        "MAIL 553 5.1.8 bad sender domain",
    ],
    (PermanentError, Verdict.PERMANENT): [
        "MAIL 552 5.3.4 message too big",
        "RCPT 550 5.1.1 no such user",
        "DATA 554 5.6.0 content rejected",
    ],
    (TransportSetupError, Verdict.CONFIGURATION): [
        "RCPT 530 5.7.0 authentication required",
        "DATA 550 5.7.26 DMARC policy",
    ],
}
FAULTS = [
    (*refusal.split(" ", 1), expected, verdict)
    for (expected, verdict), refusals in REFUSALS.items()
    for refusal in refusals
]


@pytest.mark.parametrize(("command", "reply", "expected", "verdict"), FAULTS)
async def test_refusals_are_classified(
    smtp_server: SMTPTestServer,
    command: str,
    reply: str,
    expected: type[DeliveryError],
    verdict: Verdict,
) -> None:
    smtp_server.scripted.replies[command] = reply
    transport = transport_for(smtp_server)
    with pytest.raises(expected) as caught:
        await transport.send(envelope())
    error = caught.value
    assert error.verdict is verdict
    assert error.code == int(reply[:3])
    assert error.enhanced_status == reply.split()[1]
    assert error.stage == SMTPStage(command.lower())
    assert error.server_text is not None
    assert error.server_text in reply

    # A refusal leaves the connection usable (421 aside: the server is closing it).
    del smtp_server.scripted.replies[command]
    await transport.send(envelope())
    await transport.close()
    assert len(smtp_server.scripted.received) == 1
    assert smtp_server.scripted.connections == (2 if reply.startswith("421") else 1)


async def test_some_recipients_refused_others_delivered(smtp_server: SMTPTestServer) -> None:
    smtp_server.scripted.rcpt_replies["nobody@example.com"] = "550 5.1.1 no such user"
    async with transport_for(smtp_server) as transport:
        result = await transport.send(envelope(["bob@example.com", "nobody@example.com"]))
    assert result.accepted == ("bob@example.com",)
    refused = result.refused["nobody@example.com"]
    assert isinstance(refused, PermanentError)
    assert refused.recipient == "nobody@example.com"
    assert refused.enhanced_status == "5.1.1"
    assert smtp_server.scripted.received[0].rcpt_tos == ["bob@example.com"]


async def test_all_recipients_refused_reports_the_most_hopeful_verdict(
    smtp_server: SMTPTestServer,
) -> None:
    smtp_server.scripted.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    smtp_server.scripted.rcpt_replies["full@example.com"] = "452 4.2.2 mailbox full"
    transport = transport_for(smtp_server)
    with pytest.raises(TransientError) as caught:
        await transport.send(envelope(["gone@example.com", "full@example.com"]))
    assert set(caught.value.refused) == {"gone@example.com", "full@example.com"}
    assert smtp_server.scripted.received == []
    await transport.close()


async def test_server_closing_mid_data_is_transient(smtp_server_factory: ServerFactory) -> None:
    server = smtp_server_factory(close_in_data=True)
    transport = transport_for(server)
    with pytest.raises(ConnectionLostError) as caught:
        await transport.send(envelope())
    assert caught.value.verdict is Verdict.TRANSIENT
    assert caught.value.stage is SMTPStage.DATA
    # Whether the content was already written when the close was noticed is a race; when it
    # was, "possibly delivered" is the honest answer, so either is right here.
    assert not transport.is_connected


async def test_close_after_final_dot_without_reply_is_transient(
    smtp_server: SMTPTestServer,
) -> None:
    smtp_server.scripted.close_after_dot = True
    transport = transport_for(smtp_server)
    with pytest.raises(ConnectionLostError) as caught:
        await transport.send(envelope())
    assert caught.value.stage is SMTPStage.DATA
    assert caught.value.possibly_delivered


async def test_no_reply_after_final_dot_within_timeout_is_possibly_delivered(
    smtp_server: SMTPTestServer,
) -> None:
    smtp_server.scripted.delays["DATA"] = 2.0
    transport = SMTPTransport(host="127.0.0.1", port=smtp_server.port, timeout=0.5)
    with pytest.raises(DeliveryTimeoutError) as caught:
        await transport.send(envelope())
    assert caught.value.possibly_delivered
    assert caught.value.verdict is Verdict.TRANSIENT


async def test_leading_dots_survive_dot_stuffing(smtp_server: SMTPTestServer) -> None:
    body = ".starts with a dot\n..two dots\n.\nalone\n"
    env = build_envelope(
        Message(to=["bob@example.com"], subject="dots", text=body), default_from="a@example.com"
    )
    async with transport_for(smtp_server) as transport:
        await transport.send(env)
    assert smtp_server.scripted.received[0].data.replace(b"\r\n", b"\n") == env.data.replace(
        b"\r\n", b"\n"
    )


async def test_reply_slower_than_timeout(smtp_server: SMTPTestServer) -> None:
    smtp_server.scripted.delays["MAIL"] = 2.0
    transport = SMTPTransport(host="127.0.0.1", port=smtp_server.port, timeout=0.5)
    with pytest.raises(DeliveryTimeoutError) as caught:
        await transport.send(envelope())
    assert caught.value.verdict is Verdict.TRANSIENT
    assert isinstance(caught.value, TimeoutError)


async def test_closed_port_is_unreachable(unused_tcp_port: int) -> None:
    transport = SMTPTransport(host="127.0.0.1", port=unused_tcp_port, timeout=2)
    with pytest.raises(RelayUnreachableError) as caught:
        await transport.send(envelope())
    assert caught.value.verdict is Verdict.CONFIGURATION
    assert caught.value.stage is SMTPStage.CONNECT


async def test_implicit_tls_against_plain_server_is_a_tls_error(
    smtp_server: SMTPTestServer, tls: TLSFiles
) -> None:
    transport = transport_for(smtp_server, use_ssl=True, cafile=tls.ca_path)
    with pytest.raises(TLSError):
        await transport.send(envelope())


async def test_starttls_against_server_without_it_is_a_tls_error(
    smtp_server: SMTPTestServer, tls: TLSFiles
) -> None:
    transport = transport_for(smtp_server, use_tls=True, cafile=tls.ca_path)
    with pytest.raises(TLSError, match="does not offer STARTTLS"):
        await transport.send(envelope())


async def test_thousand_messages_over_one_connection(smtp_server: SMTPTestServer) -> None:
    envelopes = [envelope(f"user{i}@example.com", subject=f"Message {i}") for i in range(1000)]
    async with transport_for(smtp_server) as transport:
        for env in envelopes:
            await transport.send(env)
        assert transport.connections_opened == 1
    assert len(smtp_server.scripted.received) == 1000
    assert smtp_server.scripted.connections == 1
    ids = {
        email.message_from_bytes(r.data, policy=email.policy.default)["Message-ID"]
        for r in smtp_server.scripted.received
    }
    assert ids == {e.message_id for e in envelopes}


async def test_reconnects_after_the_server_drops_an_idle_connection(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(timeout=0.3)  # aiosmtpd closes idle sessions after 0.3 s
    async with transport_for(server) as transport:
        await transport.send(envelope())
        await asyncio.sleep(0.8)
        await transport.send(envelope())
    assert len(server.scripted.received) == 2
    assert server.scripted.connections == 2


async def test_smtputf8_address_when_the_server_offers_it(smtp_server: SMTPTestServer) -> None:
    env = build_envelope(
        Message(to=["josé@example.com"], subject="Olá", text="oi"), default_from="ada@example.com"
    )
    assert env.smtputf8
    async with transport_for(smtp_server) as transport:
        await transport.send(env)
    [received] = smtp_server.scripted.received
    assert received.rcpt_tos == ["josé@example.com"]
    assert "SMTPUTF8" in received.mail_options


async def test_smtputf8_address_without_server_support_is_refused_clearly(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(enable_SMTPUTF8=False)
    env = build_envelope(
        Message(to=["josé@example.com"], subject="Olá", text="oi"), default_from="ada@example.com"
    )
    transport = transport_for(server)
    with pytest.raises(SMTPUTF8UnsupportedError, match="SMTPUTF8"):
        await transport.send(env)
    await transport.close()
    assert server.scripted.received == []


async def test_message_over_the_servers_size_is_refused_before_sending(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(data_size_limit=1000)
    env = build_envelope(
        Message(to=["bob@example.com"], subject="big", text="x" * 5000),
        default_from="ada@example.com",
    )
    transport = transport_for(server)
    with pytest.raises(PermanentError, match="SIZE"):
        await transport.send(env)
    await transport.close()


def test_repr_and_describe_never_show_the_password(tmp_path: Path) -> None:
    transport = SMTPTransport(
        host="relay.example.com",
        port=587,
        username=TEST_USER,
        password=TEST_PASSWORD,
        use_tls=True,
    )
    assert TEST_PASSWORD not in repr(transport)
    assert TEST_PASSWORD not in transport.describe()
    assert TEST_PASSWORD not in repr(vars(transport))


async def test_pipelining_sends_mail_rcpt_and_data_in_one_round_trip(
    smtp_server: SMTPTestServer,
) -> None:
    env = envelope(["bob@example.com", "carol@example.com"])
    async with transport_for(smtp_server) as transport:
        await transport.send(env)
    [behind] = smtp_server.scripted.behind_mail
    if smtp_server.scripted.pipelining:
        assert behind == (b"RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n")
    else:
        assert behind == b""  # each command waits for its reply
    assert smtp_server.scripted.received[0].rcpt_tos == ["bob@example.com", "carol@example.com"]


async def test_pipelined_refusals_leave_the_connection_in_step(smtp_server: SMTPTestServer) -> None:
    """A refused MAIL makes the relay answer the pipelined RCPT and DATA with errors too;
    every one of those replies must be read, or the next message would get them."""
    async with transport_for(smtp_server) as transport:
        smtp_server.scripted.sender_replies["ada@example.com"] = "550 5.7.1 sender blocked"
        with pytest.raises(SenderRefusedError):
            await transport.send(envelope())
        smtp_server.scripted.sender_replies.clear()
        smtp_server.scripted.rcpt_replies["bob@example.com"] = "550 5.1.1 no such user"
        with pytest.raises(PermanentError):
            await transport.send(envelope())
        smtp_server.scripted.rcpt_replies.clear()
        results = [await transport.send(envelope(subject=f"n{i}")) for i in range(3)]
    assert [r.accepted for r in results] == [("bob@example.com",)] * 3
    assert [parse(r.data)["Subject"] for r in smtp_server.scripted.received] == ["n0", "n1", "n2"]
    assert smtp_server.scripted.connections == 1


def parse(data: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed

"""What ``mailroom smtpd`` offers in EHLO and which MAIL and RCPT parameters it takes, with
smtplib against the real process: 8BITMIME (``BODY=7BIT``, ``BODY=8BITMIME``, RFC 6152) with
8-bit content stored byte for byte, SMTPUTF8 (RFC 6531), AUTH= (RFC 4954 §5), and ``555``
for any other parameter (RFC 5321 §4.1.1.11)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.smtpd_port import TRUSTED, Port, running_port, split_received, submitted
from support.tls_files import TLSFiles

EIGHT_BIT = (
    b"From: App <app@example.com>\r\n"
    b"To: ada@example.com\r\n"
    b"Subject: 8-bit\r\n"
    b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <eight@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xfc\xdfe aus K\xf6ln, \x80\xff and UTF-8 too: \xc3\xa9\r\n"
    b".a dotted line\r\n"
)


@pytest.fixture
def port(tls: TLSFiles, tmp_path: Path) -> Iterator[Port]:
    with running_port(tls, tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}") as started:
        yield started


def test_ehlo_offers_8bitmime_smtputf8_and_size(port: Port) -> None:
    with port.connect(TRUSTED) as client:
        client.ehlo()
        for extension in ("8bitmime", "smtputf8", "size", "starttls"):
            assert client.has_extn(extension), extension


@pytest.mark.parametrize("body", ["BODY=8BITMIME", "body=8bitmime"])
def test_an_8bit_body_declared_8bitmime_is_stored_byte_for_byte(port: Port, body: str) -> None:
    with port.session(port.key()) as client:
        assert client.sendmail("app@example.com", ["ada@example.com"], EIGHT_BIT, [body]) == {}
    (row,) = port.rows()
    assert split_received(bytes(row.data))[1] == EIGHT_BIT
    assert row.smtputf8 is False  # an 8-bit body asks nothing of the relay's SMTPUTF8


def test_body_7bit_is_taken_and_other_bodies_are_refused(port: Port) -> None:
    with port.session(port.key()) as client:
        data = submitted("Seven")
        assert client.sendmail("app@example.com", ["ada@example.com"], data, ["BODY=7BIT"]) == {}
        with pytest.raises(smtplib.SMTPSenderRefused) as binary:
            client.sendmail("app@example.com", ["ada@example.com"], data, ["BODY=BINARYMIME"])
        assert binary.value.smtp_code == 501  # BINARYMIME is not offered (no CHUNKING)
    assert [row.subject for row in port.rows()] == ["Seven"]


@pytest.mark.parametrize(
    "parameter",
    [
        "XFOO=1",
        "X-FOO=1",  # a hyphen is allowed in a keyword (RFC 5321 4.1.2): unknown, not bad
        "RET=HDRS",  # DSN (RFC 3461) is not offered
        "ENVID=abc",
        "REQUIRETLS",
        "FOO",
    ],
)
def test_an_unknown_mail_parameter_is_555(port: Port, parameter: str) -> None:
    with port.connect(TRUSTED) as client:
        client.ehlo()
        code, reply = client.mail("app@example.com", [parameter])
        assert code == 555, reply
        assert client.mail("app@example.com")[0] == 250  # the session goes on


def test_rcpt_takes_no_parameter(port: Port) -> None:
    with port.connect(TRUSTED) as client:
        client.ehlo()
        assert client.mail("app@example.com")[0] == 250
        for parameter in ("NOTIFY=NEVER", "ORCPT=rfc822;ada@example.com", "AUTH=<>", "X-Y"):
            assert client.rcpt("ada@example.com", [parameter])[0] == 555, parameter
        assert client.rcpt("ada@example.com")[0] == 250


@pytest.mark.parametrize("parameter", ["BODY=", "=8BITMIME", "-X=1", "X_Y=1", "AUTH", "AUTH=a=b"])
def test_a_malformed_parameter_is_501(port: Port, parameter: str) -> None:
    with port.connect(TRUSTED) as client:
        client.ehlo()
        assert client.mail("app@example.com", [parameter])[0] == 501, parameter


def test_auth_in_mail_is_taken_and_not_believed(port: Port) -> None:
    key = port.key()
    long_value = "x" * 600  # RFC 4954 3: AUTH= adds 500 octets to the longest MAIL line
    with port.session(key) as client:
        assert (
            client.sendmail("app@example.com", ["ada@example.com"], submitted("Empty"), ["AUTH=<>"])
            == {}
        )
        port.connect(TRUSTED).quit()  # aiosmtpd's line limits were reset by each connection
        for value in ("boss+40example.com", long_value):
            options = [f"AUTH={value}", "BODY=8BITMIME", "SIZE=1000"]
            sent = client.sendmail(
                "app@example.com", ["ada@example.com"], submitted(value[:8]), options
            )
            assert sent == {}
    rows = port.rows()
    assert [row.subject for row in rows] == ["Empty", "boss+40e", "x" * 8]
    assert len({row.extra["mailroom.api_key"] for row in rows}) == 1  # the key's, not AUTH='s


def test_smtputf8_is_asked_of_the_relay_only_when_the_message_needs_it(port: Port) -> None:
    # Go's net/smtp (and others) say SMTPUTF8 whenever it is offered, for ASCII mail too.
    go = ["SMTPUTF8", "BODY=8BITMIME"]
    utf8_subject = submitted("Plain").replace(b"Subject: Plain", "Subject: Grüße".encode())
    with port.session(port.key()) as client:
        for recipient, data in (
            ("ada@example.com", submitted("Go")),
            ("ada@example.com", utf8_subject),
            ("jörg@example.com", submitted("Address")),
        ):
            assert client.sendmail("app@example.com", [recipient], data, go) == {}
    rows = port.rows()
    assert [(row.subject, row.smtputf8) for row in rows] == [
        ("Go", False),
        ("Grüße", True),
        ("Address", True),
    ]
    assert split_received(bytes(rows[1].data))[1] == utf8_subject


def test_a_unicode_address_needs_smtputf8_in_mail(port: Port) -> None:
    with port.session(port.key()) as client:
        client.command_encoding = "utf-8"  # a client that sends UTF-8 without declaring it
        assert client.mail("jörg@example.com") == (
            553,
            b"5.6.7 Must declare SMTPUTF8 to send unicode address",
        )
        assert client.mail("app@example.com")[0] == 250
        assert client.rcpt("jörg@example.com")[0] == 553
        client.rset()
        assert client.mail("jörg@example.com", ["SMTPUTF8"])[0] == 250
        assert client.rcpt("jörg@example.com")[0] == 250

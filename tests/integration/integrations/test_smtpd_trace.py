"""The ``Received`` field ``mailroom smtpd`` puts above each message it takes (RFC 5321
§4.4), against the real process: its clauses for each way of submitting (RFC 3848's ESMTP,
ESMTPS, ESMTPA, ESMTPSA; RFC 6531's UTF8SMTP...; SMTP after HELO), a date and a queue id of
its own, no key and no login name in it, and a client's name that cannot break out of it."""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from support.smtpd_port import (
    TRUSTED,
    Port,
    raw_transaction,
    running_port,
    split_received,
    submitted,
)
from support.tls_files import TLSFiles

HOSTNAME = "mx.example.test"
_FIELD = re.compile(
    r"Received: from (?P<helo>\S+) \(unknown \[(?P<ip>[0-9.]+)\]\)"
    r"\tby (?P<by>\S+) \(Mailroom\) with (?P<protocol>[A-Z0-9]+) id (?P<id>[0-9A-F]{16});"
    r"\t(?P<date>.+)"
)


@pytest.fixture
def port(tls: TLSFiles, tmp_path: Path) -> Iterator[Port]:
    with running_port(
        tls, tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", EMAIL_LOCAL_HOSTNAME=HOSTNAME
    ) as started:
        yield started


def fields(port: Port) -> list[re.Match[str]]:
    """Each stored message's Received field, parsed; the bytes below it must be what was
    submitted (:func:`submitted`, its subject the protocol's name)."""
    parsed = []
    for row in port.rows():
        field, below = split_received(bytes(row.data))
        assert below == submitted(row.subject)
        found = _FIELD.fullmatch(field)
        assert found is not None, field
        parsed.append(found)
    return parsed


def send(client: smtplib.SMTP, subject: str, **options: list[str]) -> None:
    assert (
        client.sendmail("app@example.com", ["ada@example.com"], submitted(subject), **options) == {}
    )


def test_each_way_of_submitting_is_named_in_the_with_clause(port: Port) -> None:
    key = port.key()
    with port.connect(TRUSTED) as client:
        client.ehlo("app.example.com")
        send(client, "ESMTP")
        send(client, "UTF8SMTP", mail_options=["SMTPUTF8"])
    with port.connect(TRUSTED) as client:
        client.ehlo("app.example.com")
        client.starttls(context=port.client_tls)
        client.ehlo("app.example.com")
        send(client, "ESMTPS")
    with port.connect() as client:
        client.ehlo("app.example.com")
        client.starttls(context=port.client_tls)
        client.ehlo("app.example.com")
        client.login("a-login-name", key)
        send(client, "ESMTPSA")
        send(client, "UTF8SMTPSA", mail_options=["SMTPUTF8"])
    with port.connect(TRUSTED) as client:
        client.helo("old.example.com")
        send(client, "SMTP")
    found = fields(port)
    assert [f["protocol"] for f in found] == [row.subject for row in port.rows()]
    assert {f["helo"] for f in found} == {"app.example.com", "old.example.com"}
    assert [f["ip"] for f in found] == [
        TRUSTED,
        TRUSTED,
        TRUSTED,
        "127.0.0.1",
        "127.0.0.1",
        TRUSTED,
    ]
    assert {f["by"] for f in found} == {HOSTNAME}
    assert len({f["id"] for f in found}) == len(found)  # a queue id each
    for f in found:
        assert abs(parsedate_to_datetime(f["date"]).timestamp() - time.time()) < 120
    stored = b"".join(bytes(row.data) for row in port.rows())
    assert key.encode() not in stored
    assert b"a-login-name" not in stored


def test_auth_without_tls_on_loopback_is_esmtpa(tls: TLSFiles, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    with running_port(tls, tmp_path, url, certificate=False, EMAIL_LOCAL_HOSTNAME=HOSTNAME) as port:
        with port.connect() as client:
            client.ehlo("app.example.com")
            client.login("a-login-name", port.key())
            send(client, "ESMTPA")
        (found,) = fields(port)
    assert found["protocol"] == "ESMTPA"


def test_a_clients_name_is_written_safely_and_the_field_stays_three_short_lines(
    port: Port,
) -> None:
    with port.connect(TRUSTED) as client:
        # A CR, a semicolon, parentheses, raw UTF-8 and 300 more octets in the EHLO name.
        client.send(b"EHLO evil(x)\rX-Injected: yes; caf\xc3\xa9" + b"a" * 300 + b"\r\n")
        assert client.getreply()[0] == 250
        assert raw_transaction(client, submitted("hostile"))[0] == 250
    (row,) = port.rows()
    data = bytes(row.data)
    lines = data.split(b"\r\n")[:3]
    assert lines[0].startswith(b"Received: from evil?x??X-Injected:?yes??caf?aaa")
    assert lines[0].endswith(b"aaa (unknown [127.0.0.2])")
    assert len(lines[0]) == len(b"Received: from ") + 255 + len(b" (unknown [127.0.0.2])")
    assert lines[1].startswith(b"\tby mx.example.test (Mailroom) with ESMTP id ")
    assert lines[2][:1] == b"\t"
    assert max(map(len, lines)) < 998
    assert data.index(b"\r\nFrom: App") == sum(map(len, lines)) + 2 * 2  # then the message
    assert data.count(b"X-Injected") == 1  # in the field's first line only, not a field


def test_a_message_without_date_and_message_id_gets_them_below_the_received_field(
    port: Port,
) -> None:
    bare = b"From: App <app@example.com>\r\nTo: ada@example.com\r\nSubject: Bare\r\n\r\nHi\r\n"
    with port.connect(TRUSTED) as client:
        assert client.sendmail("app@example.com", ["ada@example.com"], bare) == {}
    (row,) = port.rows()
    field, below = split_received(bytes(row.data))
    assert field.startswith("Received: from ")
    assert below.startswith(b"Date: ")
    assert below.endswith(bare)

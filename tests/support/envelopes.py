"""Building envelopes in the message tests, and reading them back.

Every envelope is read back with the standard library's parser (``policy.default``), the
same way a receiving client would, so the tests check what a reader sees, not our strings.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from hypothesis import strategies as st

from mailroom.message import Envelope, Message, build_envelope

SENDER = "Mailroom <noreply@example.com>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def build(message: Message, **kwargs: int) -> Envelope:
    return build_envelope(message, default_from=SENDER, **kwargs)


def parse(envelope: Envelope) -> EmailMessage:
    parsed = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_block(envelope: Envelope) -> bytes:
    return envelope.data.split(b"\r\n\r\n", 1)[0]


def longest_line(envelope: Envelope) -> int:
    return max(len(line) for line in envelope.data.split(b"\r\n"))


BIDI_OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")


def collapse(value: str) -> str:
    return " ".join(value.split())


# -- strategies ---------------------------------------------------------------------------

# Anything a header may hold: every code point except CR, LF, NUL and lone surrogates.
header_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00")
header_text = st.text(header_chars, max_size=120)


# What file names and ids may hold: no control characters at all.
printable_chars = st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"])
breakers = st.sampled_from(["\r", "\n", "\x00", "\r\n"])

atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
local_parts = st.text(st.sampled_from(atext), min_size=1, max_size=20)
labels = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?\Z")
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]),
    st.lists(labels, min_size=1, max_size=3),
    st.sampled_from(["example", "test", "com", "org"]),
)
addr_specs = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)


def inject(value: str, breaker: str, position: int) -> str:
    at = position % (len(value) + 1)
    return value[:at] + breaker + value[at:]


def assert_crlf_only(data: bytes) -> None:
    """Every line ends in CRLF: no bare LF, no bare CR (RFC 5322 §2.3; Postfix >= 3.9
    refuses bare LF in DATA)."""
    assert data.endswith(b"\r\n")
    for number, line in enumerate(data.split(b"\r\n"), 1):
        assert b"\n" not in line, f"bare LF on line {number}"
        assert b"\r" not in line, f"bare CR on line {number}"

"""The fast composition path writes exactly what the email package writes for the same
message, and declines every shape it does not handle."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import random
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom.message import Attachment, Message, build_envelope, mime_fast

_BOUNDARY = re.compile(rb"={15}\d{19}==")
_DATE = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)

ascii_line = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90)
ascii_body = st.lists(ascii_line, max_size=8).map("\n".join) | st.sampled_from(
    ["", "\n", "a\r\nb\rc\n", ".\n..\n", "--x\n", "From here\n"]
)
any_body = ascii_body | st.text(max_size=200)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90) | (
    st.text(max_size=20).filter(lambda value: not re.search(r"[\r\n\x00]", value))
)
local = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,5})?", fullmatch=True)
address = st.builds(
    lambda name, user, domain: f"{name} <{user}@{domain}>" if name else f"{user}@{domain}",
    st.sampled_from(["", "Ada Lovelace", "Dr. Who", "Zoë Ünicode", 'A "quoted" name']),
    local,
    st.sampled_from(["example.com", "mail.example.org", "bücher.example"]),
)


def general(message: Message) -> bytes:
    """What the email package writes, with the fast path switched off."""
    original = mime_fast.compose
    mime_fast.compose = lambda *args, **kwargs: None
    try:
        return build_envelope(message, default_from="app@example.com").data
    finally:
        mime_fast.compose = original


def fast(message: Message) -> bytes:
    return build_envelope(message, default_from="app@example.com").data


def normalised(data: bytes) -> bytes:
    return _BOUNDARY.sub(b"BOUNDARY", data)


messages = st.builds(
    Message,
    text=st.none() | any_body,
    html=st.none() | any_body,
    subject=header_value,
    to=st.lists(address, min_size=1, max_size=3),
    cc=st.lists(address, max_size=2),
    headers=st.dictionaries(st.sampled_from(["X-Tag", "X-Campaign", "Precedence"]), header_value),
    date=st.just(_DATE),
    message_id=st.just("<fixed.1@example.com>"),
)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(message=messages)
def test_fast_path_writes_what_the_email_package_writes(message: Message) -> None:
    assert normalised(fast(message)) == normalised(general(message))


def test_the_common_shapes_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's message, a text+html notification and an html-only one are written
    directly (or the fast path would be dead code)."""
    taken: list[bool] = []
    original = mime_fast.compose

    def spy(*args: object, **kwargs: object) -> bytes | None:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(result is not None)
        return result

    monkeypatch.setattr(mime_fast, "compose", spy)
    for text, html in [("Hello\n", None), ("Hello\n", "<p>Hello</p>"), (None, "<p>Hi</p>")]:
        build_envelope(
            Message(to=["Bob <bob@example.com>"], subject="Weekly digest", text=text, html=html),
            default_from="Ada <ada@example.com>",
        )
    assert taken == [True, True, True]


@pytest.mark.parametrize(
    "message",
    [
        Message(to=["b@example.com"], subject="a  b"),  # a double blank
        Message(to=["b@example.com"], subject="=?utf-8?q?x?="),  # looks like an encoded word
        Message(to=["b@example.com"], text="x", attachments=[Attachment("a.txt", b"x")]),
        Message(to=["björn@example.com"], text="x"),  # SMTPUTF8
    ],
    ids=["double-blank", "encoded-word", "attachment", "utf8"],
)
def test_other_shapes_take_the_general_path(
    message: Message, monkeypatch: pytest.MonkeyPatch
) -> None:
    results: list[bytes | None] = []
    original = mime_fast.compose
    monkeypatch.setattr(
        mime_fast,
        "compose",
        lambda *args: results.append(original(*args)) or results[-1],  # type: ignore[func-returns-value]
    )
    data = build_envelope(message, default_from="app@example.com").data
    assert results in ([], [None])
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Message-ID"]


@pytest.mark.parametrize(
    "message",
    [
        Message(to=["b@example.com"], text="é"),  # not ASCII: quoted-printable or base64
        Message(to=["b@example.com"], text="x" * 79),  # a line over 78 octets
        Message(to=["b@example.com"], text="x" * 2000, html="<p>" + "y" * 3000 + "</p>"),
        Message(to=["b@example.com"], subject="word " * 20),  # a header that folds
        Message(
            to=["b@example.com"],
            text="t",
            html="<p>h</p>",
            headers={
                "List-Unsubscribe": "<https://mail.example.com/unsubscribe/" + "t" * 140 + ">"
            },
        ),  # a campaign's: one word longer than a line
    ],
    ids=["non-ascii", "long-line", "long-lines-both", "folded", "long-word-header"],
)
def test_long_lines_and_encoded_bodies_take_the_fast_path_and_match(
    message: Message, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campaign message's shapes: the general path's bytes, written directly."""
    # A subject: the email package writes an empty one in a way of its own (general path).
    message = dataclasses.replace(
        message,
        subject=message.subject or "Hi",
        date=_DATE,
        message_id="<fixed.1@example.com>",
    )
    taken: list[bool] = []
    original = mime_fast.compose

    def spy(*args: object, **kwargs: object) -> bytes | None:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(result is not None)
        return result

    monkeypatch.setattr(mime_fast, "compose", spy)
    written = fast(message)
    assert taken == [True]
    monkeypatch.setattr(mime_fast, "compose", original)
    assert normalised(written) == normalised(general(message))


def test_boundary_never_appears_in_a_body(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter([1, 1, 2])
    monkeypatch.setattr(random, "randrange", lambda _limit: next(tokens))
    taken = f"{'=' * 15}{1:019d}=="
    data = fast(Message(to=["b@example.com"], subject="s", text=f"--{taken}\n", html="<p>x</p>"))
    assert f'boundary="{"=" * 15}{2:019d}=="'.encode() in data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    contents = [p.get_content().replace("\r\n", "\n") for p in parsed.iter_parts()]
    assert contents == [f"--{taken}\n", "<p>x</p>\n"]

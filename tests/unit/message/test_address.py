"""Addresses: parsing, IDNA and SMTPUTF8, display names, and what is refused in them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.errors import HeaderInjectionError, InvalidAddressError, MessageError
from mailroom.message import (
    MAX_DISPLAY_NAME_OCTETS,
    MAX_LINE_OCTETS,
    Address,
    Message,
    build_envelope,
)
from support.envelopes import (
    BIDI_OVERRIDES,
    addr_specs,
    breakers,
    build,
    collapse,
    header_chars,
    inject,
    longest_line,
    parse,
)


@settings(max_examples=300, deadline=None)
@given(name=st.text(header_chars, max_size=60))
def test_display_name_round_trips_through_parse(name: str) -> None:
    """``"quoted name" <addr>`` as a string gives back the (collapsed) name."""
    expected = collapse(name)
    if len(expected.encode()) > MAX_DISPLAY_NAME_OCTETS:  # pragma: no cover - 60 chars max
        return
    if BIDI_OVERRIDES.search(name):
        return  # refused: test_bidi_overrides_in_display_names_are_refused
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    address = Address.parse(f'"{quoted}" <ada@example.com>', "to")
    assert address.display_name == expected
    assert address.addr_spec == "ada@example.com"
    (read_back,) = parse(build(Message(to=[address], text="x")))["To"].addresses
    assert read_back.display_name == expected


def test_display_name_whitespace_is_collapsed() -> None:
    address = Address.parse("  Ada \t  Lovelace   <ada@example.com>", "to")
    assert address.display_name == "Ada Lovelace"
    assert address.with_display_name("  Countess \u3000 of   Lovelace ").display_name == (
        "Countess of Lovelace"
    )


def test_display_name_at_the_cap_is_accepted_and_one_over_is_refused() -> None:
    at_cap = "é" * (MAX_DISPLAY_NAME_OCTETS // 2)
    address = Address.create("ada@example.com", at_cap)
    (read_back,) = parse(build(Message(to=[address], text="x")))["To"].addresses
    assert read_back.display_name == at_cap
    with pytest.raises(MessageError):
        Address.create("ada@example.com", at_cap + "a")
    with pytest.raises(MessageError):
        Address.parse(f"{'a' * (MAX_DISPLAY_NAME_OCTETS + 1)} <ada@example.com>", "to")
    with pytest.raises(MessageError):
        address.with_display_name("😀" * (MAX_DISPLAY_NAME_OCTETS // 4 + 1))


@settings(max_examples=300, deadline=None)
@given(name=st.text(header_chars, max_size=30), breaker=breakers, position=st.integers(0))
def test_line_breaks_in_display_names_are_refused(name: str, breaker: str, position: int) -> None:
    bad = inject(name, breaker, position)
    with pytest.raises(HeaderInjectionError) as caught:
        Address.create("ada@example.com", bad, "to")
    assert caught.value.field == "to"
    with pytest.raises(HeaderInjectionError) as caught:
        Address.create("ada@example.com").with_display_name(bad)
    assert caught.value.field == "display name"


def test_trailing_dot_domain_is_normalised() -> None:
    envelope = build(Message(to=["ada@example.com."], text="x"))
    assert envelope.recipients == ("ada@example.com",)
    assert parse(envelope)["To"].addresses[0].addr_spec == "ada@example.com"
    with pytest.raises(InvalidAddressError):
        Address.parse("ada@example.com..")


@pytest.mark.parametrize(
    ("field", "address"),
    [
        ("to", Address("ada\r\nBcc: evil@example.net\r\nX", "example.com")),
        ("to", Address("ada", "example.com\r\nBcc: evil@example.net")),
        ("cc", Address("ada", "example.com", "Ada\r\nBcc: evil@example.net")),
        ("from_email", Address("a\x00da", "example.com")),
    ],
)
def test_address_objects_built_directly_are_checked_too(field: str, address: Address) -> None:
    """``Address(...)`` skips ``create``; the envelope must still refuse a line break."""
    message = {
        "to": Message(to=[address], text="x"),
        "cc": Message(to=["a@example.com"], cc=[address], text="x"),
        "from_email": Message(to=["a@example.com"], from_email=address, text="x"),
    }[field]
    with pytest.raises(HeaderInjectionError) as caught:
        build(message)
    assert caught.value.field == field


def test_address_objects_built_directly_are_validated() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(to=[Address("has space", "example.com")], text="x"))
    assert caught.value.field == "to"


@pytest.mark.parametrize(
    "bad",
    [
        "adaexample.com",
        "@example.com",
        "ada@",
        "ada@@example.com",
        "ada lovelace@example.com",
        "ada@exa mple.com",
        "ada@-example.com",
        "ada@example-.com",
        "ada@exa..mple.com",
        "ada@exa_mple.com",
        "ada.@example.com",
        ".ada@example.com",
        "a..da@example.com",
        "ada@" + "a" * 64 + ".com",
        "a" * 65 + "@example.com",
        "ada@" + ".".join(["abcdefghi"] * 26) + ".com",
        "Ada <>",
        "Ada <ada>",
        "",
        "   ",
        '"ada"@example.com',
        "ada@[192.0.2.1]",
    ],
)
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to", "from_email"])
def test_invalid_addresses_are_refused_naming_the_field(bad: str, field: str) -> None:
    kwargs: dict[str, object] = {"to": ["ok@example.com"], "text": "x"}
    kwargs[field] = bad if field == "from_email" else [bad]
    message = Message(**kwargs)  # type: ignore[arg-type]
    if field == "from_email" and not bad:  # empty means "use default_from", as in Django
        assert build(message).sender == "noreply@example.com"
        return
    with pytest.raises(InvalidAddressError) as caught:
        build(message)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_invalid_default_from_names_from_email() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build_envelope(Message(to=["a@example.com"], text="x"), default_from="not an address")
    assert caught.value.field == "from_email"


def test_non_string_address_is_refused() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        Address.parse(42, "to")  # type: ignore[arg-type]
    assert caught.value.field == "to"


@pytest.mark.parametrize(
    ("text", "display", "spec"),
    [
        ("ada@example.com", "", "ada@example.com"),
        ("  ada@example.com  ", "", "ada@example.com"),
        ("<ada@example.com>", "", "ada@example.com"),
        ("Ada Lovelace <ada@example.com>", "Ada Lovelace", "ada@example.com"),
        ('"Lovelace, Ada" <ada@example.com>', "Lovelace, Ada", "ada@example.com"),
        (
            '"Ada \\"The Countess\\" L." <ada@example.com>',
            'Ada "The Countess" L.',
            "ada@example.com",
        ),
        ("Zoë Ünïcode <zoe@example.com>", "Zoë Ünïcode", "zoe@example.com"),
        ("ada@EXAMPLE.COM", "", "ada@example.com"),
        ("first.last+tag@sub.example.co.uk", "", "first.last+tag@sub.example.co.uk"),
        ("o'brien@example.com", "", "o'brien@example.com"),
        ("ada@example.com.", "", "ada@example.com"),
    ],
)
def test_addresses_parse(text: str, display: str, spec: str) -> None:
    address = Address.parse(text, "to")
    assert address.display_name == display
    assert address.addr_spec == spec
    assert Address.parse(address) == address
    (read_back,) = parse(build(Message(to=[text], text="x")))["To"].addresses
    assert read_back.display_name == display
    assert read_back.addr_spec == spec


def test_address_str_is_a_header_form() -> None:
    assert str(Address.parse("Ada Lovelace <ada@example.com>")) == "Ada Lovelace <ada@example.com>"
    assert str(Address.parse("ada@example.com")) == "ada@example.com"


def test_non_ascii_domain_is_idna_encoded_and_needs_no_smtputf8() -> None:
    address = Address.parse("Bob <bob@bücher.example>", "to")
    assert address.domain == "xn--bcher-kva.example"
    assert address.addr_spec == "bob@xn--bcher-kva.example"
    assert not address.needs_smtputf8
    envelope = build(Message(to=["bob@bücher.example"], from_email="shop@bücher.example", text="x"))
    assert envelope.recipients == ("bob@xn--bcher-kva.example",)
    assert envelope.sender == "shop@xn--bcher-kva.example"
    assert not envelope.smtputf8
    assert envelope.data.isascii()
    assert b"bob@xn--bcher-kva.example" in envelope.data


def test_invalid_idna_domain_is_refused() -> None:
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(to=["bob@b\u00fccher..example"], text="x"))
    assert caught.value.field == "to"


@pytest.mark.parametrize("local", ["δοκιμή", "用户", "josé", "ñandú.ñ"])
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "from_email", "reply_to"])
def test_non_ascii_local_part_needs_smtputf8(local: str, field: str) -> None:
    spec = f"{local}@example.com"
    assert Address.parse(spec).needs_smtputf8
    kwargs: dict[str, object] = {"to": ["a@example.com"], "text": "x"}
    kwargs[field] = spec if field == "from_email" else [spec]
    envelope = build(Message(**kwargs))  # type: ignore[arg-type]
    assert envelope.smtputf8
    if field == "bcc":
        assert spec.encode("utf-8") not in envelope.data
    else:
        assert spec.encode("utf-8") in envelope.data
    assert longest_line(envelope) <= MAX_LINE_OCTETS
    if field == "from_email":
        assert envelope.sender == spec
    elif field != "reply_to":
        assert spec in envelope.recipients


def test_ascii_message_does_not_need_smtputf8() -> None:
    envelope = build(Message(to=["Zoë <zoe@example.com>"], subject="Grüße", text="é"))
    assert not envelope.smtputf8


@settings(max_examples=300, deadline=None)
@given(spec=addr_specs)
def test_valid_addresses_round_trip(spec: str) -> None:
    envelope = build(Message(to=[spec], text="x"))
    assert envelope.recipients == (spec,)
    (read_back,) = parse(envelope)["To"].addresses
    assert read_back.addr_spec == spec


UNSAFE_IN_ADDRESSES = ["\x80", "\x85", "\x9f", "\u2028", "\u2029", "\u061c", "\u200e", "\u200f",
                       "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                       "\u2068", "\u2069"]  # fmt: skip


@pytest.mark.parametrize("char", UNSAFE_IN_ADDRESSES)
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to", "from_email"])
def test_unsafe_characters_in_local_parts_are_refused(char: str, field: str) -> None:
    bad = f"ad{char}a@example.com"
    kwargs: dict[str, object] = {"to": ["x@example.com"], "text": "x"}
    kwargs[field] = bad if field == "from_email" else [bad]
    with pytest.raises(InvalidAddressError) as caught:
        build(Message(**kwargs))  # type: ignore[arg-type]
    assert caught.value.field == field
    assert f"U+{ord(char):04X}" in str(caught.value)
    assert char not in str(caught.value)  # shown escaped, never raw


@pytest.mark.parametrize("char", UNSAFE_IN_ADDRESSES)
def test_unsafe_characters_in_domains_are_refused(char: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        Address.parse(f"ada@exa{char}mple.com", "to")
    assert f"U+{ord(char):04X}" in str(caught.value)


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202d", "\u202e", "\u2066", "\u2069"])
def test_bidi_overrides_in_display_names_are_refused(char: str) -> None:
    """ "Ada <ada@x>" shown with an override before the address can reverse the address
    itself in a reader that shows both."""
    makers: list[Callable[[], Address]] = [
        lambda: Address.parse(f"Ada{char} <ada@example.com>", "to"),
        lambda: Address.create("ada@example.com", f"Ada {char}", "to"),
        lambda: Address.create("ada@example.com").with_display_name(f"{char}Ada"),
    ]
    for make in makers:
        with pytest.raises(InvalidAddressError) as caught:
            make()
        assert f"U+{ord(char):04X}" in str(caught.value)


def test_display_names_keep_bidi_marks_and_collapse_line_separators() -> None:
    """Right-to-left names may need the marks (U+200E/F); NEL and U+2028/9 are blanks."""
    name = "\u05d3\u05e0\u05d9\u200f Cohen"
    address = Address.create("dani@example.com", name, "to")
    (read_back,) = parse(build(Message(to=[address], text="x")))["To"].addresses
    assert read_back.display_name == name
    assert Address.create("a@example.com", "Ada\x85Lovelace\u2028L.").display_name == (
        "Ada Lovelace L."
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("Ada <ada@example.com", "missing the '>'"),
        ("Ada ada@example.com>", "missing the '<'"),
        ("<ada@example.com> Ada", "text after the '>'"),
        ("a@example.com, b@example.com", "more than one address"),
        ("a@example.com b@example.com", "more than one '@'"),
        ("ada lovelace@example.com", "a blank"),
        ("ada;b@example.com", "';'"),
        ("a" * 65 + "@example.com", "over 64 octets"),
        ("ada.@example.com", "invalid local part"),
    ],
)
def test_address_errors_say_what_is_wrong(value: str, words: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        Address.parse(value, "from_email")
    assert caught.value.field == "from_email"
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("a@example.com, b@example.com", ["a@example.com", "b@example.com"]),
        (
            ["a@example.com,b@example.com", "c@example.com"],
            ["a@example.com", "b@example.com", "c@example.com"],
        ),
        (
            '"Lovelace, Ada" <ada@example.com>, bob@example.com',
            ["ada@example.com", "bob@example.com"],
        ),
        ("Ada <ada@example.com>, Bob <bob@example.com>,", ["ada@example.com", "bob@example.com"]),
        # An unquoted comma in a name is not a list (one entry has no "@"): one address.
        ("Lovelace, Ada <ada@example.com>", ["ada@example.com"]),
    ],
)
def test_comma_separated_recipients_are_split(to: str | list[str], expected: list[str]) -> None:
    envelope = build(Message(to=to, text="x"))
    assert list(envelope.recipients) == expected
    assert [a.addr_spec for a in parse(envelope)["To"].addresses] == expected

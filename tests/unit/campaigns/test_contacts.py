"""What a contact may hold: the bounds and rules on its name, its attributes and a list's
name, each refusal naming the field and what to change."""

from __future__ import annotations

import re

import pytest

from mailroom.campaigns.contacts import (
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    attributes_json,
    check_attribute_key,
    check_attributes,
    check_contact_name,
)
from mailroom.campaigns.lists import check_list_name
from mailroom.errors import MessageError


def test_attributes_of_every_allowed_kind_are_kept_and_none_stays_to_remove_a_key() -> None:
    given = {"city": "Oslo", "age": 42, "score": 1.5, "vip": True, "old": None}
    assert check_attributes(given) == given
    assert attributes_json({"city": "Zürich", "n": 1}) == '{"city":"Zürich","n":1}'


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        (["city"], "attributes: must be an object of name: value, not a list"),
        ({"city": ["Oslo"]}, "attributes.city: a list is not an attribute value"),
        ({"city": {"name": "Oslo"}}, "attributes.city: a dict is not an attribute value"),
        ({"n": float("nan")}, "attributes.n: nan is not a number JSON can hold"),
        ({"n": float("inf")}, "attributes.n: inf is not a number JSON can hold"),
        ({"city": "Os\x00lo"}, "attributes.city: holds a NUL character"),
        ({"city": "Os\udcfflo"}, "attributes.city: holds a NUL character or undecodable text"),
        ({"first name": "Ada"}, "'first name' is not an attribute name"),
        ({"Ümlaut": "x"}, "'Ümlaut' is not an attribute name"),
        ({"x" * 65: "x"}, "is not an attribute name"),
        ({1: "x"}, "1 is not an attribute name"),
        ({"email": "x"}, "'email' cannot name an attribute"),
        ({"keys": "x"}, "'keys' cannot name an attribute"),
        ({f"k{n}": n for n in range(MAX_ATTRIBUTES + 1)}, "51 attributes; at most 50"),
    ],
)
def test_attributes_that_cannot_be_stored_or_used_are_refused(
    attributes: object, says: str
) -> None:
    with pytest.raises(MessageError) as refused:
        check_attributes(attributes)
    assert says in str(refused.value)


def test_a_key_at_the_longest_is_accepted() -> None:
    assert check_attribute_key("x" * 64) == "x" * 64
    assert check_attribute_key("firstName_2") == "firstName_2"


def test_attributes_are_bounded_as_compact_utf8_json() -> None:
    # {"k":"..."} is 8 bytes around the value; "é" is 2 bytes in UTF-8.
    at_the_bound = {"k": "é" * ((MAX_ATTRIBUTES_BYTES - 8) // 2)}
    assert len(attributes_json(at_the_bound).encode()) == MAX_ATTRIBUTES_BYTES
    with pytest.raises(
        MessageError, match=f"would be 8194 bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}"
    ):
        attributes_json({"k": "é" * ((MAX_ATTRIBUTES_BYTES - 8) // 2) + "é"})
    with pytest.raises(MessageError, match="would have 51 attributes"):
        attributes_json({f"k{n}": n for n in range(MAX_ATTRIBUTES + 1)})


@pytest.mark.parametrize(
    ("name", "stored"),
    [("  Ada \t Lovelace ", "Ada Lovelace"), ("", None), ("  ", None), ("Zoë 李", "Zoë 李")],
)
def test_a_name_is_stored_with_its_blanks_collapsed(name: str, stored: str | None) -> None:
    assert check_contact_name(name) == stored


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Ada\x1b[2J", "holds U+001B"),
        ("evil\u202egnp.exe", "holds U+202E"),
        ("nul\x00", "holds U+0000"),
        ("é" * 129, "is over 256 bytes"),
    ],
)
def test_a_name_no_address_could_carry_is_refused(name: str, says: str) -> None:
    with pytest.raises(MessageError, match=re.escape(says)):
        check_contact_name(name)


@pytest.mark.parametrize("name", ["news", "course.cs101-2026", "a_b", "x" * 100, "0"])
def test_list_names_like_notification_types(name: str) -> None:
    assert check_list_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "News", "news letter", ".news", "news.", "a..b", "-x", "x" * 101, "list:news"]
)
def test_a_list_name_that_cannot_be_one_is_refused(name: str) -> None:
    with pytest.raises(MessageError, match="is not a list name: lower-case letters"):
        check_list_name(name)

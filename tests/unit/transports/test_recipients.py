"""Splitting one delivery's recipients into transactions, without a relay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.transports.recipients import RecipientBatches, is_too_many_recipients


def addresses(count: int) -> list[str]:
    return [f"r{i}@example.com" for i in range(count)]


def test_batches_of_the_limit_in_order() -> None:
    batches = RecipientBatches(addresses(250), 100)
    got = []
    while batches:
        got.append(batches.next_batch())
    assert [len(b) for b in got] == [100, 100, 50]
    assert [r for b in got for r in b] == addresses(250)
    assert batches.transactions == 3
    assert batches.next_batch() == []


def test_fewer_than_the_limit_is_one_transaction() -> None:
    batches = RecipientBatches(addresses(3), 100)
    assert batches.next_batch() == addresses(3)
    assert not batches
    assert batches.transactions == 1


def test_no_room_puts_the_rest_back_first_and_lowers_the_limit() -> None:
    everyone = addresses(1000)
    batches = RecipientBatches(everyone, 500)
    first = batches.next_batch()
    # The relay took 100, then said "too many recipients" to the other 400.
    assert batches.no_room(first[100:], taken=100)
    assert batches.limit == 100
    assert len(batches) == 900
    rest = []
    while batches:
        batch = batches.next_batch()
        assert len(batch) == 100
        rest += batch
    assert rest == everyone[100:]  # in order, none lost, none twice


def test_the_limit_only_goes_down() -> None:
    batches = RecipientBatches(addresses(300), 100)
    batch = batches.next_batch()
    assert batches.no_room(batch[50:], taken=50)
    batch = batches.next_batch()
    assert len(batch) == 50
    assert batches.no_room(batch[40:], taken=80)  # an odd count, never a higher limit
    assert batches.limit == 50


def test_no_room_in_an_empty_transaction_is_not_put_back() -> None:
    batches = RecipientBatches(addresses(10), 5)
    batch = batches.next_batch()
    assert not batches.no_room(batch, taken=0)
    assert batches.limit == 5
    assert batches.take_rest() == addresses(10)[5:]
    assert not batches


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RecipientBatches(addresses(1), 0)


@given(
    count=st.integers(1, 400),
    limit=st.integers(1, 150),
    relay_limit=st.integers(0, 150),
)
def test_every_recipient_is_decided_once_and_it_ends(
    count: int, limit: int, relay_limit: int
) -> None:
    """Against a relay taking ``relay_limit`` per transaction (0: none at all), each
    recipient is either delivered once or left for later, and the loop ends."""
    everyone = addresses(count)
    batches = RecipientBatches(everyone, limit)
    delivered: list[str] = []
    left: list[str] = []
    rounds = 0
    while batches:
        rounds += 1
        assert rounds <= count + 1
        batch = batches.next_batch()
        assert 1 <= len(batch) <= limit
        taken = min(relay_limit, len(batch))
        delivered += batch[:taken]
        if taken < len(batch) and not batches.no_room(batch[taken:], taken=taken):
            left += batch[taken:] + batches.take_rest()
    assert sorted(delivered + left) == sorted(everyone)
    assert len(set(delivered)) == len(delivered)
    assert bool(left) is (relay_limit == 0)


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (452, "4.5.3 Too many recipients", True),
        (452, "4.5.3 Error: too many recipients", True),  # Postfix
        (452, "too many recipients", True),  # Exim, no enhanced status
        (552, "5.5.3 Too many recipients", True),  # RFC 821's code (RFC 5321 §4.5.3.1.10)
        (452, "4.3.1 Insufficient system storage", False),
        (452, "4.2.2 Mailbox full", False),
        (450, "4.5.3 Too many recipients", False),
        (550, "5.5.3 Too many recipients", False),
        (250, "2.1.5 OK", False),
    ],
)
def test_is_too_many_recipients(code: int, text: str, expected: bool) -> None:
    assert is_too_many_recipients(code, text) is expected

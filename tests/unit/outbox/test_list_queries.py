"""How the contact queries cut a run of rows into statements: a few fixed sizes, so a few
statement texts, whatever the run's length."""

from __future__ import annotations

import pytest

from mailroom.outbox.list_queries import in_pieces


@pytest.mark.parametrize("count", [0, 1, 9, 10, 999, 5000, 5001, 19_607, 20_000])
def test_every_row_once_in_order_in_pieces_of_the_fixed_sizes(count: int) -> None:
    rows = list(range(count))
    pieces = list(in_pieces(rows))
    assert [row for piece in pieces for row in piece] == rows
    assert {len(piece) for piece in pieces} <= {5000, 1000, 100, 10, 1}
    assert [len(p) for p in pieces] == sorted((len(p) for p in pieces), reverse=True)


def test_a_remainder_is_cut_into_at_most_nine_pieces_of_each_smaller_size() -> None:
    sizes = [len(piece) for piece in in_pieces(list(range(19_607)))]
    assert sizes == [5000] * 3 + [1000] * 4 + [100] * 6 + [1] * 7

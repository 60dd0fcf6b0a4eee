"""The status page's hourly chart as geometry (``mailroom.web.admin.status_chart``)."""

from __future__ import annotations

from mailroom.outbox.activity_queries import HOUR, HourCounts
from mailroom.web.admin.status_chart import hourly_chart

START = 2_000_001_600.0  # 2033-05-18 04:00 UTC


def _hours(*totals: tuple[int, int, int]) -> list[HourCounts]:
    return [
        HourCounts(START + i * HOUR, sent=s, deferred=d, failed=f)
        for i, (s, d, f) in enumerate(totals)
    ]


def test_bars_stack_sent_under_deferred_under_failed_to_scale() -> None:
    chart = hourly_chart(_hours((6, 1, 1), (0, 0, 0), (3, 0, 0), *[(0, 0, 0)] * 21))

    assert chart.ticks[-1].value == 8  # four steps of 2 reach the busiest hour's 8
    assert [tick.value for tick in chart.ticks] == [0, 2, 4, 6, 8]
    first = chart.bars[0]
    sent, deferred, failed = first.segments
    assert (sent.kind, deferred.kind, failed.kind) == ("sent", "deferred", "failed")
    assert sent.y + sent.height == chart.baseline
    assert deferred.y + deferred.height == sent.y
    assert round(failed.y, 1) == round(chart.top, 1)  # the busiest hour fills the plot
    assert sent.height == 6 * deferred.height
    assert chart.bars[1].segments == ()
    assert chart.totals == {"sent": 9, "deferred": 1, "failed": 1}
    assert not chart.empty


def test_each_bar_has_a_title_with_its_numbers_and_every_third_a_label() -> None:
    chart = hourly_chart(_hours(*[(1, 2, 3)] * 24))

    assert chart.bars[0].title == "04:00 to 05:00 UTC: 1 sent, 2 deferred, 3 failed"
    assert chart.bars[23].title == "03:00 to 04:00 UTC: 1 sent, 2 deferred, 3 failed"
    assert chart.bars[0].label == "04:00"
    labels = [bar.label for bar in chart.bars]
    assert [i for i, label in enumerate(labels) if label] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert [bar.minor for bar in chart.bars if bar.label] == [False, True] * 4


def test_an_empty_day_still_has_an_axis() -> None:
    chart = hourly_chart(_hours(*[(0, 0, 0)] * 24))

    assert chart.empty
    assert [tick.value for tick in chart.ticks] == [0, 1, 2, 3, 4]
    assert all(bar.segments == () for bar in chart.bars)


def test_round_steps_for_large_counts() -> None:
    chart = hourly_chart(_hours((1234, 0, 0)))

    assert [tick.value for tick in chart.ticks] == [0, 500, 1000, 1500, 2000]


def test_a_quarter_step_when_it_fits_better() -> None:
    chart = hourly_chart(_hours((880, 0, 0)))

    assert [tick.value for tick in chart.ticks] == [0, 250, 500, 750, 1000]

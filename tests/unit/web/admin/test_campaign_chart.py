"""The campaign page's chart as geometry (``mailroom.web.admin.campaign_chart``): buckets sized
to the events, empty buckets drawn, sends stacked under failures, opens and clicks as lines."""

from __future__ import annotations

from mailroom.campaigns.stats import TimePoint
from mailroom.web.admin.campaign_chart import MAX_BUCKETS, bucket_for, campaign_chart

START = 2_000_001_600.0  # 2033-05-18 04:00 UTC, a multiple of every bucket size below a day


def test_the_bucket_fits_the_span_in_at_most_the_bucket_limit() -> None:
    assert bucket_for(0) == 1
    assert bucket_for(9) == 1  # a thousand sent in ten seconds: second by second
    assert bucket_for(60) == 2
    assert bucket_for(3600) == 120
    assert bucket_for(7 * 86400) == 21600  # a week: six hours a bar, 28 bars
    for span in (1, 59, 3599, 86_399, 30 * 86400, 400 * 86400):
        size = bucket_for(span)
        assert span / size < MAX_BUCKETS, span
    assert bucket_for(400 * 86400) % 86400 == 0  # past the list, whole days


def test_sends_stack_under_failures_and_the_gaps_are_drawn() -> None:
    points = [
        TimePoint(START, sent=6, failed=2),
        TimePoint(START + 30, sent=3, opened=1),  # two empty buckets before it
    ]
    chart = campaign_chart(points, 10)

    assert [column.point.at for column in chart.columns] == [START + i * 10 for i in range(4)]
    assert chart.columns[1].segments == ()
    sent, failed = chart.columns[0].segments
    assert (sent.kind, failed.kind) == ("sent", "failed")
    assert sent.y + sent.height == chart.baseline
    assert failed.y + failed.height == sent.y
    assert sent.height == 3 * failed.height
    assert chart.totals == {"sent": 9, "failed": 2, "opened": 1, "clicked": 0}
    assert chart.bucket_text == "10 seconds"
    title = "04:00:00 to 04:00:10 UTC: 6 sent, 2 failed, 0 opened, 0 clicked"
    assert chart.columns[0].title == title


def test_opens_and_clicks_are_lines_with_a_dot_where_there_are_any() -> None:
    points = [TimePoint(START, sent=4), TimePoint(START + 60, opened=2, clicked=1)]
    chart = campaign_chart(points, 60)

    opened, clicked = chart.lines
    assert (opened.kind, clicked.kind) == ("opened", "clicked")
    assert len(opened.points.split()) == 2  # one point a bucket
    (dot,) = opened.dots
    assert dot[0] == chart.columns[1].centre
    assert dot[1] < chart.baseline
    assert chart.bucket_text == "1 minute"
    only_sent = campaign_chart([TimePoint(START, sent=1)], 1)
    assert only_sent.lines == ()  # nothing opened: no line along the floor


def test_few_buckets_make_slim_bars_and_many_keep_eight_labels_at_most() -> None:
    one = campaign_chart([TimePoint(START, sent=3)], 1)
    (column,) = one.columns
    assert column.width <= 40
    assert column.x + column.width / 2 == column.centre
    many = campaign_chart([TimePoint(START + i * 60, sent=1) for i in range(40)], 60)
    labels = [column.label for column in many.columns if column.label]
    assert 1 < len(labels) <= 8
    assert labels[0] == "04:00"


def test_nothing_yet_still_has_an_axis() -> None:
    chart = campaign_chart([], 1)

    assert chart.empty
    assert chart.columns == ()
    assert [tick.value for tick in chart.ticks] == [0, 1, 2, 3, 4]

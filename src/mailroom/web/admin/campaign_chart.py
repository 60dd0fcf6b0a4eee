"""The campaign page's chart over time: per time bucket, the recipients sent and failed as
stacked bars, and the opens and clicks as two lines over them, worked out here as the
geometry an inline SVG needs (the status page's chart, :mod:`.status_chart`, draws the same
way: no script, no chart library, a table beside it for screen readers).

The buckets are sized to the campaign's events: a campaign of a thousand sent in ten seconds
gets one-second buckets, one whose opens came in over a week gets hours or days, and never
more than :data:`MAX_BUCKETS` of them. Empty buckets between the first and the last are
drawn, so the time axis stays even.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailroom.campaigns.stats import TimePoint
from mailroom.web.admin.status_chart import HEIGHT, TICKS, WIDTH, Segment, Tick, nice_step

__all__ = [
    "BUCKETS",
    "MAX_BUCKETS",
    "CampaignChart",
    "Column",
    "Line",
    "bucket_for",
    "campaign_chart",
]

BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
"""Bucket sizes (seconds) to choose from; past 12 hours, whole days."""
_DAY = 86400
MAX_BUCKETS = 48
_LABELS = 8  # at most this many labels on the time axis
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 8, 14, 36  # as the status page's chart
_PLOT_WIDTH = WIDTH - _LEFT - _RIGHT
_PLOT_HEIGHT = HEIGHT - _TOP - _BOTTOM
_BAR_SHARE = 0.72
_BAR_MAX = 40.0  # a few buckets make slim bars, not slabs across the chart

BAR_KINDS = ("sent", "failed")
"""Bottom to top."""
LINE_KINDS = ("opened", "clicked")


def bucket_for(span: float) -> int:
    """The smallest bucket (seconds) that fits ``span`` in :data:`MAX_BUCKETS` buckets."""
    for size in BUCKETS:
        if span / size < MAX_BUCKETS:
            return size
    return _DAY * max(1, math.ceil(span / _DAY / MAX_BUCKETS))


@dataclass(frozen=True, slots=True)
class Column:
    """One bucket: its slot, its bar's segments, its title and label, and its counts."""

    slot_x: float
    slot_width: float
    x: float
    width: float
    centre: float
    segments: tuple[Segment, ...]
    title: str
    """``14:03:10 to 14:03:20 UTC: 120 sent, 0 failed, 3 opened, 1 clicked``."""
    label: str | None
    minor: bool
    """A label a narrow screen may leave out (every other one)."""
    point: TimePoint


@dataclass(frozen=True, slots=True)
class Line:
    """Opens or clicks over time: the polyline's points and a dot at each bucket with any."""

    kind: str
    points: str
    """``x,y x,y ...`` for ``<polyline points>``."""
    dots: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class CampaignChart:
    width: int
    height: int
    left: float
    right: float
    top: float
    baseline: float
    bucket_seconds: int
    columns: tuple[Column, ...]
    lines: tuple[Line, ...]
    ticks: tuple[Tick, ...]
    totals: dict[str, int]

    @property
    def empty(self) -> bool:
        return not any(self.totals.values())

    @property
    def bucket_text(self) -> str:
        """``10 seconds``, ``5 minutes``, ``1 hour``, ``2 days``: what one bar stands for."""
        size = self.bucket_seconds
        for unit, seconds in (("day", _DAY), ("hour", 3600), ("minute", 60)):
            if size >= seconds and size % seconds == 0:
                count = size // seconds
                return f"{count} {unit}{'' if count == 1 else 's'}"
        return f"{size} second{'' if size == 1 else 's'}"


def _time_text(at: float, bucket: int) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    if bucket >= _DAY:
        return moment.strftime("%m-%d")
    return moment.strftime("%H:%M" if bucket >= 60 else "%H:%M:%S")


def _filled(points: Sequence[TimePoint], bucket: int) -> list[TimePoint]:
    """Every bucket from the first point's to the last's, those without events empty."""
    if not points:
        return []
    by_start = {round(point.at): point for point in points}
    first, last = round(points[0].at), round(points[-1].at)
    return [by_start.get(at, TimePoint(float(at))) for at in range(first, last + 1, bucket)]


def campaign_chart(points: Sequence[TimePoint], bucket_seconds: int) -> CampaignChart:
    """The chart of ``points`` (oldest first, ``bucket_seconds`` apart as
    :func:`~mailroom.campaigns.stats.timeline` gives them), scaled to the busiest bucket."""
    filled = _filled(points, bucket_seconds)
    largest = max(
        (max(p.sent + p.failed, p.opened, p.clicked) for p in filled),
        default=0,
    )
    top_value = nice_step(largest) * TICKS
    scale = _PLOT_HEIGHT / top_value
    baseline = _TOP + _PLOT_HEIGHT
    slot = _PLOT_WIDTH / max(len(filled), 1)
    every = max(1, math.ceil(len(filled) / _LABELS))
    columns = []
    for index, point in enumerate(filled):
        slot_x = _LEFT + index * slot
        segments = []
        y = baseline
        for kind in BAR_KINDS:
            count = getattr(point, kind)
            if count:
                height = count * scale
                y -= height
                segments.append(Segment(kind, round(y, 2), round(height, 2)))
        counts = ", ".join(f"{getattr(point, kind)} {kind}" for kind in (*BAR_KINDS, *LINE_KINDS))
        start = _time_text(point.at, bucket_seconds)
        end = _time_text(point.at + bucket_seconds, bucket_seconds)
        labelled = index % every == 0
        width = min(slot * _BAR_SHARE, _BAR_MAX)
        columns.append(
            Column(
                slot_x=round(slot_x, 2),
                slot_width=round(slot, 2),
                x=round(slot_x + (slot - width) / 2, 2),
                width=round(width, 2),
                centre=round(slot_x + slot / 2, 2),
                segments=tuple(segments),
                title=f"{start} to {end} UTC: {counts}",
                label=start if labelled else None,
                minor=labelled and (index // every) % 2 == 1,
                point=point,
            )
        )
    lines = []
    for kind in LINE_KINDS:
        coordinates = [
            (column.centre, round(baseline - getattr(column.point, kind) * scale, 2))
            for column in columns
        ]
        if any(getattr(point, kind) for point in filled):
            lines.append(
                Line(
                    kind=kind,
                    points=" ".join(f"{x},{y}" for x, y in coordinates),
                    dots=tuple(
                        xy for xy, p in zip(coordinates, filled, strict=True) if getattr(p, kind)
                    ),
                )
            )
    step = top_value // TICKS
    ticks = tuple(
        Tick(value=step * n, y=round(baseline - step * n * scale, 2)) for n in range(TICKS + 1)
    )
    return CampaignChart(
        width=WIDTH,
        height=HEIGHT,
        left=_LEFT,
        right=WIDTH - _RIGHT,
        top=_TOP,
        baseline=baseline,
        bucket_seconds=bucket_seconds,
        columns=tuple(columns),
        lines=tuple(lines),
        ticks=ticks,
        totals={kind: sum(getattr(p, kind) for p in filled) for kind in (*BAR_KINDS, *LINE_KINDS)},
    )

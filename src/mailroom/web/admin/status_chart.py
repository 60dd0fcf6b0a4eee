"""The status page's chart of the last day: stacked bars per hour (sent, deferred, failed) as
the geometry an inline SVG needs, worked out here so the template only places shapes.

No script and no chart library: the page's CSP allows neither inline script nor anything
from elsewhere, and a server-drawn SVG shows the same to a screen reader (its table) and to a
browser with scripts off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailroom.outbox.activity_queries import HourCounts

__all__ = [
    "HEIGHT",
    "TICKS",
    "WIDTH",
    "Bar",
    "Chart",
    "Segment",
    "Tick",
    "hourly_chart",
    "nice_step",
]

WIDTH = 960
HEIGHT = 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 8, 14, 36  # room for the axis labels
_PLOT_WIDTH = WIDTH - _LEFT - _RIGHT
_PLOT_HEIGHT = HEIGHT - _TOP - _BOTTOM
_BAR_SHARE = 0.72  # of an hour's slot; the rest is the gap between bars
TICKS = 4  # steps on the vertical axis
_LABEL_EVERY = 3  # hours between the labels of the time axis

KINDS = ("sent", "deferred", "failed")
"""Bottom to top: what went through under what did not."""


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Bar:
    """One hour: its slot (for the tooltip's hit area), its segments and its label."""

    slot_x: float
    slot_width: float
    x: float
    width: float
    segments: tuple[Segment, ...]
    title: str
    """``14:00 to 15:00 UTC: 12 sent, 1 deferred, 0 failed``."""
    label: str | None
    """``14:00`` every few hours, else ``None``."""
    minor: bool
    """A label a narrow screen may leave out (every other one)."""
    hour: HourCounts


@dataclass(frozen=True, slots=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    baseline: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    totals: dict[str, int]
    """Each outcome summed over the whole window."""

    @property
    def empty(self) -> bool:
        return not any(self.totals.values())


def nice_step(largest: int) -> int:
    """The smallest round step (1, 2, 2.5 or 5 times a power of ten, a whole number) of which
    four reach ``largest``: the busiest hour fills most of the chart's height."""
    if largest <= TICKS:
        return 1
    rough = largest / TICKS
    power = 10 ** math.floor(math.log10(rough))
    factors = (1, 2, 5, 10) if power == 1 else (1, 2, 2.5, 5, 10)
    return int(next(factor * power for factor in factors if factor * power >= rough))


def _hour_text(start: float) -> str:
    return datetime.fromtimestamp(start, UTC).strftime("%H:%M")


def hourly_chart(hours: Sequence[HourCounts]) -> Chart:
    """The chart of ``hours`` (oldest first), scaled to the busiest hour."""
    top_value = nice_step(max((hour.total for hour in hours), default=0)) * TICKS
    scale = _PLOT_HEIGHT / top_value
    baseline = _TOP + _PLOT_HEIGHT
    slot = _PLOT_WIDTH / max(len(hours), 1)
    bars = []
    for index, hour in enumerate(hours):
        slot_x = _LEFT + index * slot
        segments = []
        y = baseline
        for kind in KINDS:
            count = getattr(hour, kind)
            if count:
                height = count * scale
                y -= height
                segments.append(Segment(kind, round(y, 2), round(height, 2)))
        end = _hour_text(hour.start + 3600)
        counts = ", ".join(f"{getattr(hour, kind)} {kind}" for kind in KINDS)
        labelled = index % _LABEL_EVERY == 0
        bars.append(
            Bar(
                slot_x=round(slot_x, 2),
                slot_width=round(slot, 2),
                x=round(slot_x + slot * (1 - _BAR_SHARE) / 2, 2),
                width=round(slot * _BAR_SHARE, 2),
                segments=tuple(segments),
                title=f"{_hour_text(hour.start)} to {end} UTC: {counts}",
                label=_hour_text(hour.start) if labelled else None,
                minor=labelled and (index // _LABEL_EVERY) % 2 == 1,
                hour=hour,
            )
        )
    step = top_value // TICKS
    ticks = tuple(
        Tick(value=step * n, y=round(baseline - step * n * scale, 2)) for n in range(TICKS + 1)
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=_LEFT,
        right=WIDTH - _RIGHT,
        top=_TOP,
        baseline=baseline,
        bars=tuple(bars),
        ticks=ticks,
        totals={kind: sum(getattr(hour, kind) for hour in hours) for kind in KINDS},
    )

"""What every part of the benchmark shares: progress output and the figure record."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

_STARTED = time.monotonic()


def log(text: str) -> None:
    """Progress on stderr, so stdout holds only the results."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {text}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One measured number, printed as a table row and as one JSON line."""

    bench: str
    metric: str
    value: float | None
    unit: str
    ratio: float | None = None
    """To the reference named in ``ratio_to`` (smtp-source unless said otherwise)."""
    ratio_to: str | None = None
    target: str | None = None
    ok: bool | None = None
    """Whether the target is met; ``None`` when there is no target."""
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bench": self.bench,
            "metric": self.metric,
            "value": None if self.value is None else round(self.value, 3),
            "unit": self.unit,
        }
        if self.ratio is not None:
            out["ratio"] = round(self.ratio, 3)
            out["ratio_to"] = self.ratio_to
        if self.target is not None:
            out["target"] = self.target
            out["ok"] = self.ok
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out

"""What to do with a message after a failed delivery attempt: a pure decision.

:meth:`RetryPolicy.decide` looks at the error's verdict (see :mod:`mailroom.errors`) and returns
one of three decisions; the worker carries it out:

- **transient** (4yz, dropped line, timeout) → :class:`RetryAt`, after an exponential backoff
  (60 s, 4 min, 16 min, then at most 1 h by default, each ±20 % jitter so that messages which
  failed together do not retry together), until ``max_attempts`` attempts have been made or
  the next attempt would fall after ``max_age`` from the message's creation → :class:`GiveUp`;
- **permanent** (5yz about the message or recipient) → :class:`GiveUp` at once, keeping the
  relay's reply as the reason;
- **configuration** (our password, TLS, sender address, relay host) → :class:`PauseStream`:
  no message is at fault, so the message goes back to the queue without using up an attempt
  and the whole stream waits (30 s, 60 s, 120 s, ... at most 15 min) for the settings to be
  fixed, instead of burning every queued message's attempts on the same mistake.

A transient failure after the message content was sent (a dropped line or timeout waiting for
the reply to the final dot of DATA) may mean the relay delivered it anyway; such a retry is
flagged ``possible_duplicate`` so the worker can record it. Delivery is at-least-once, and the
message keeps its ``Message-ID`` so a duplicate can be recognised.

Nothing here reads the clock, the settings or global randomness: ``now``, ``created_at`` and a
:class:`random.Random` are passed in, so every decision can be tested exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailroom.errors import (
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    SMTPStage,
    Verdict,
)

__all__ = ["Decision", "GiveUp", "PauseStream", "RetryAt", "RetryPolicy"]

_MAY_BE_DELIVERED = "the relay may have delivered the message already"


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try the message again at ``at``; ``reason`` says why the last attempt failed.

    ``possible_duplicate`` is true when the failed attempt may nonetheless have delivered the
    message (the line dropped after the content was sent), so this retry may duplicate it.
    """

    at: datetime
    reason: str
    possible_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Mark the message failed; ``reason`` is shown to people (the relay's reply if any)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PauseStream:
    """Our own configuration is wrong: pause the stream until ``until``.

    The message goes back to the queue without using up an attempt; it was not at fault.
    """

    until: datetime
    reason: str


Decision = RetryAt | GiveUp | PauseStream
"""What :meth:`RetryPolicy.decide` returns."""


def _grow(base: timedelta, factor: float, exponent: int, cap: timedelta) -> timedelta:
    """``min(cap, base * factor**exponent)`` without overflowing on a large exponent."""
    try:
        growth = factor**exponent
    except OverflowError:  # float ** int raises rather than returning inf
        return cap
    # Compare in float seconds first: base * growth as a timedelta could overflow its range.
    if base.total_seconds() * growth >= cap.total_seconds():
        return cap
    # min() again because the float comparison and timedelta rounding may differ by 1 µs.
    return min(cap, base * growth)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry; the defaults match the documented settings.

    ``max_attempts`` is ``EMAIL_MAX_ATTEMPTS`` and ``max_age`` is ``EMAIL_MAX_AGE``. The backoff
    after ``n`` failed attempts is ``min(max_delay, base_delay * factor**(n-1))``, the pause
    after ``k`` earlier consecutive pauses is ``min(pause_max, pause_base * 2**k)``; both are
    scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``.
    """

    max_attempts: int = 3
    max_age: timedelta = timedelta(days=2)
    base_delay: timedelta = timedelta(seconds=60)
    factor: float = 4.0
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.2
    pause_base: timedelta = timedelta(seconds=30)
    pause_max: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        """Refuse a policy that could retry forever, never wait, or wait a negative time."""
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        for name in ("max_age", "base_delay", "max_delay", "pause_base", "pause_max"):
            value: timedelta = getattr(self, name)
            if value <= timedelta(0):
                raise ValueError(f"{name} must be positive, not {value}")
        if not 0 <= self.jitter < 1:
            # jitter >= 1 could make a delay zero or negative.
            raise ValueError(f"jitter must be at least 0 and less than 1, not {self.jitter}")
        if not self.factor >= 1:  # written this way so that NaN is refused too
            raise ValueError(f"factor must be at least 1, not {self.factor}")

    def backoff(self, attempts: int, rng: random.Random) -> timedelta:
        """The delay before the next attempt after ``attempts`` (>= 1) failed attempts."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        delay = _grow(self.base_delay, self.factor, attempts - 1, self.max_delay)
        return self._jittered(delay, rng)

    def pause(self, consecutive_pauses: int, rng: random.Random) -> timedelta:
        """How long to pause a stream that has already been paused ``consecutive_pauses`` times
        in a row (0 for the first pause)."""
        if consecutive_pauses < 0:
            raise ValueError(f"consecutive_pauses must be at least 0, not {consecutive_pauses}")
        delay = _grow(self.pause_base, 2.0, consecutive_pauses, self.pause_max)
        return self._jittered(delay, rng)

    def decide(
        self,
        error: DeliveryError,
        *,
        attempts: int,
        created_at: datetime,
        now: datetime,
        consecutive_pauses: int = 0,
        rng: random.Random,
    ) -> Decision:
        """Decide what to do after ``error`` ended a delivery attempt.

        ``attempts`` counts the delivery attempts made so far, including the one that just
        failed. ``created_at`` is when the message was enqueued and ``now`` the current time
        (both aware, or both naive). ``consecutive_pauses`` is how many times in a row the
        stream has already been paused for its configuration.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        # A bare DeliveryError has no verdict of its own; retrying it is the safe reading,
        # since max_attempts and max_age still bound it.
        verdict = getattr(error, "verdict", Verdict.TRANSIENT)
        if verdict is Verdict.CONFIGURATION:
            until = now + self.pause(consecutive_pauses, rng)
            return PauseStream(until=until, reason=f"our configuration is wrong: {error}")
        described = error.reply or str(error)
        if verdict is Verdict.PERMANENT:
            return GiveUp(reason=described)

        possible_duplicate = _possibly_delivered(error)
        caveat = f" ({_MAY_BE_DELIVERED})" if possible_duplicate else ""
        if attempts >= self.max_attempts:
            return GiveUp(reason=f"gave up after {attempts} attempts{caveat}: {described}")
        at = now + self.backoff(attempts, rng)
        if at > created_at + self.max_age:
            return GiveUp(
                reason=f"gave up: older than {self.max_age} (EMAIL_MAX_AGE) by the next "
                f"attempt, after {attempts} attempts{caveat}: {described}"
            )
        return RetryAt(
            at=at,
            reason=f"attempt {attempts} of {self.max_attempts} failed{caveat}: {described}",
            possible_duplicate=possible_duplicate,
        )

    def _jittered(self, delay: timedelta, rng: random.Random) -> timedelta:
        """``delay`` scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``.

        Jitter spreads out messages that failed together (one relay outage) so they do not all
        come back at the same second and fail together again.
        """
        low, high = 1.0 - self.jitter, 1.0 + self.jitter
        # random.uniform may land a rounding error outside [low, high]; clamp to keep the
        # documented bounds exact.
        scale = min(high, max(low, rng.uniform(low, high)))
        return delay * scale


def _possibly_delivered(error: DeliveryError) -> bool:
    """Whether the failed attempt may have delivered the message anyway.

    Only a dropped line or a timeout during DATA qualifies: once the final dot is sent the
    relay may have accepted the message before we could read its 250 (RFC 1047 describes the
    duplicates this causes). The transport sets ``possibly_delivered`` when that was the case.
    """
    return (
        error.stage is SMTPStage.DATA
        and isinstance(error, ConnectionLostError | DeliveryTimeoutError)
        and bool(getattr(error, "possibly_delivered", False))
    )

"""The retry policy: backoff, pauses and the decision after each kind of failure."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.delivery.retry import Decision, GiveUp, PauseStream, RetryAt, RetryPolicy
from mailroom.errors import (
    ConnectionLostError,
    DeliveryError,
    DeliveryTimeoutError,
    RelayUnreachableError,
    SMTPStage,
    SMTPUTF8UnsupportedError,
    TLSError,
    TransientError,
)
from mailroom.transports.smtp_replies import error_from_reply

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EXACT = RetryPolicy(jitter=0.0)
"""The default policy without jitter, so every delay is exact."""


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def decide(
    error: DeliveryError,
    *,
    attempts: int = 1,
    created_at: datetime = NOW,
    consecutive_pauses: int = 0,
    policy: RetryPolicy = EXACT,
) -> Decision:
    return policy.decide(
        error,
        attempts=attempts,
        created_at=created_at,
        now=NOW,
        consecutive_pauses=consecutive_pauses,
        rng=random.Random(0),
    )


def lost_during_data(*, possibly_delivered: bool) -> ConnectionLostError:
    error = ConnectionLostError("connection lost after the final dot", stage=SMTPStage.DATA)
    error.possibly_delivered = possibly_delivered
    return error


# --- backoff -------------------------------------------------------------------------------


def test_backoff_sequence_without_jitter() -> None:
    rng = random.Random(0)
    delays = [EXACT.backoff(n, rng) for n in range(1, 7)]
    assert delays == [seconds(60), seconds(240), seconds(960), seconds(3600), *[seconds(3600)] * 2]


def test_backoff_with_factor_one_is_constant() -> None:
    policy = RetryPolicy(factor=1.0, jitter=0.0)
    assert {policy.backoff(n, random.Random(0)) for n in range(1, 20)} == {seconds(60)}


def test_backoff_does_not_overflow_on_huge_attempt_counts() -> None:
    assert EXACT.backoff(10_000, random.Random(0)) == timedelta(hours=1)
    assert RetryPolicy().backoff(10_000, random.Random(0)) <= timedelta(hours=1) * 1.2


@given(attempts=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
def test_backoff_jitter_stays_within_bounds(attempts: int, seed: int) -> None:
    policy = RetryPolicy()
    exact = RetryPolicy(jitter=0.0).backoff(attempts, random.Random(seed))
    delay = policy.backoff(attempts, random.Random(seed))
    assert exact * (1 - policy.jitter) <= delay <= exact * (1 + policy.jitter)
    assert delay <= policy.max_delay * (1 + policy.jitter)
    assert delay > timedelta(0)


@given(
    attempts=st.integers(1, 2000),
    seed=st.integers(0, 2**32 - 1),
    jitter=st.floats(0, 0.99),
    factor=st.floats(1, 100),
)
def test_backoff_bounds_hold_for_any_policy(
    attempts: int, seed: int, jitter: float, factor: float
) -> None:
    policy = RetryPolicy(jitter=jitter, factor=factor)
    delay = policy.backoff(attempts, random.Random(seed))
    assert timedelta(0) <= delay <= policy.max_delay * (1 + jitter)


def test_backoff_jitter_spreads_delays() -> None:
    policy = RetryPolicy()
    delays = {policy.backoff(1, random.Random(seed)) for seed in range(200)}
    assert len(delays) > 100
    assert min(delays) < seconds(50)
    assert max(delays) > seconds(70)


def test_backoff_is_reproducible_for_a_seed() -> None:
    policy = RetryPolicy()
    assert policy.backoff(2, random.Random(42)) == policy.backoff(2, random.Random(42))


@pytest.mark.parametrize("attempts", [0, -1])
def test_backoff_refuses_fewer_than_one_attempt(attempts: int) -> None:
    with pytest.raises(ValueError, match="attempts"):
        EXACT.backoff(attempts, random.Random(0))


# --- pause ---------------------------------------------------------------------------------


def test_pause_doubles_up_to_fifteen_minutes() -> None:
    rng = random.Random(0)
    pauses = [EXACT.pause(k, rng) for k in range(8)]
    assert pauses == [
        seconds(30),
        seconds(60),
        seconds(120),
        seconds(240),
        seconds(480),
        seconds(900),
        seconds(900),
        seconds(900),
    ]
    assert EXACT.pause(5000, rng) == timedelta(minutes=15)


@given(consecutive=st.integers(0, 100), seed=st.integers(0, 2**32 - 1))
def test_pause_jitter_stays_within_bounds(consecutive: int, seed: int) -> None:
    policy = RetryPolicy()
    exact = EXACT.pause(consecutive, random.Random(seed))
    pause = policy.pause(consecutive, random.Random(seed))
    assert exact * (1 - policy.jitter) <= pause <= exact * (1 + policy.jitter)
    assert pause <= policy.pause_max * (1 + policy.jitter)


def test_pause_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="consecutive_pauses"):
        EXACT.pause(-1, random.Random(0))


# --- decide: the fault table -----------------------------------------------------------------

RETRY_IN_60S = [
    (421, "4.4.2 closing connection", SMTPStage.MAIL),
    (450, "4.2.1 mailbox busy", SMTPStage.RCPT),
    (451, "4.3.0 try later", SMTPStage.MAIL),
    (452, "4.3.1 insufficient storage", SMTPStage.RCPT),
    (454, "4.7.0 TLS not available", SMTPStage.STARTTLS),
]


@pytest.mark.parametrize(("code", "text", "stage"), RETRY_IN_60S)
def test_transient_replies_are_retried_after_the_backoff(
    code: int, text: str, stage: SMTPStage
) -> None:
    error = error_from_reply(code, text, stage)
    decision = decide(error)
    assert decision == RetryAt(
        at=NOW + seconds(60),
        reason=f"attempt 1 of 3 failed: {code} {text}",
        possible_duplicate=False,
    )


def test_second_transient_failure_waits_four_minutes() -> None:
    decision = decide(error_from_reply(451, "4.3.0 try later", SMTPStage.MAIL), attempts=2)
    assert isinstance(decision, RetryAt)
    assert decision.at == NOW + seconds(240)


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (550, "5.1.1 no such user", SMTPStage.RCPT),
        (552, "5.3.4 message too big", SMTPStage.DATA),
        (552, "5.2.2 mailbox full", SMTPStage.RCPT),
        (554, "5.7.1 rejected as spam", SMTPStage.DATA),
        (554, "transaction failed", SMTPStage.DATA),
    ],
)
def test_permanent_replies_give_up_with_the_servers_text(
    code: int, text: str, stage: SMTPStage
) -> None:
    error = error_from_reply(code, text, stage, recipient="ada@example.com")
    assert decide(error) == GiveUp(reason=f"{code} {text}")


def test_permanent_error_without_a_reply_gives_up_with_its_message() -> None:
    error = SMTPUTF8UnsupportedError("the relay does not offer SMTPUTF8", stage=SMTPStage.MAIL)
    assert decide(error) == GiveUp(reason="the relay does not offer SMTPUTF8")


CONFIGURATION_ERRORS: list[DeliveryError] = [
    error_from_reply(535, "5.7.8 authentication credentials invalid", SMTPStage.AUTH),
    error_from_reply(530, "5.7.0 authentication required", SMTPStage.MAIL),
    error_from_reply(550, "5.7.1 sender not allowed", SMTPStage.MAIL),
    TLSError("certificate verify failed", stage=SMTPStage.STARTTLS),
    RelayUnreachableError("connection refused: smtp.example.com:587", stage=SMTPStage.CONNECT),
]


@pytest.mark.parametrize("error", CONFIGURATION_ERRORS, ids=lambda e: type(e).__name__)
def test_configuration_errors_pause_the_stream(error: DeliveryError) -> None:
    decision = decide(error)
    assert isinstance(decision, PauseStream)
    assert decision.until == NOW + seconds(30)
    assert str(error) in decision.reason


@pytest.mark.parametrize("error", CONFIGURATION_ERRORS, ids=lambda e: type(e).__name__)
def test_configuration_errors_pause_regardless_of_attempts_and_age(error: DeliveryError) -> None:
    # The message was not at fault, so neither its attempts nor its age end it here.
    decision = decide(error, attempts=99, created_at=NOW - timedelta(days=30))
    assert isinstance(decision, PauseStream)


def test_repeated_pauses_grow() -> None:
    error = CONFIGURATION_ERRORS[0]
    untils = [decide(error, consecutive_pauses=k) for k in (0, 1, 2, 10)]
    assert [d.until for d in untils if isinstance(d, PauseStream)] == [
        NOW + seconds(30),
        NOW + seconds(60),
        NOW + seconds(120),
        NOW + timedelta(minutes=15),
    ]


def test_connection_errors_without_a_reply_are_retried() -> None:
    for error in (
        ConnectionLostError("connection reset", stage=SMTPStage.RCPT),
        DeliveryTimeoutError("no answer in 30 s", stage=SMTPStage.EHLO),
    ):
        assert decide(error) == RetryAt(
            at=NOW + seconds(60), reason=f"attempt 1 of 3 failed: {error}"
        )


def test_bare_delivery_error_is_treated_as_transient() -> None:
    assert isinstance(decide(DeliveryError("something failed")), RetryAt)


# --- decide: limits --------------------------------------------------------------------------


def test_max_attempts_reached_gives_up() -> None:
    error = error_from_reply(451, "4.3.0 try later", SMTPStage.MAIL)
    assert isinstance(decide(error, attempts=2), RetryAt)
    assert decide(error, attempts=3) == GiveUp(
        reason="gave up after 3 attempts: 451 4.3.0 try later"
    )
    assert isinstance(decide(error, attempts=4), GiveUp)


def test_single_attempt_policy_never_retries() -> None:
    error = error_from_reply(451, "4.3.0 try later", SMTPStage.MAIL)
    assert isinstance(decide(error, policy=RetryPolicy(max_attempts=1)), GiveUp)


def test_max_age_exceeded_gives_up() -> None:
    error = error_from_reply(451, "4.3.0 try later", SMTPStage.MAIL)
    max_age = EXACT.max_age
    # The next attempt would be exactly at the limit: still allowed.
    at_limit = decide(error, created_at=NOW + seconds(60) - max_age)
    assert at_limit == RetryAt(
        at=NOW + seconds(60), reason="attempt 1 of 3 failed: 451 4.3.0 try later"
    )
    # One second later than the limit: give up.
    decision = decide(error, created_at=NOW + seconds(59) - max_age)
    assert isinstance(decision, GiveUp)
    assert decision.reason.startswith(f"gave up: older than {max_age}")
    assert decision.reason.endswith("451 4.3.0 try later")


def test_max_age_uses_the_next_attempt_time_not_now() -> None:
    policy = RetryPolicy(jitter=0.0, max_age=timedelta(minutes=5), max_attempts=10)
    error = error_from_reply(421, "4.4.2 closing", SMTPStage.CONNECT)
    created = NOW - timedelta(minutes=1)
    # 1 min old + 4 min backoff = 5 min: allowed; + 16 min backoff: too old.
    assert isinstance(decide(error, attempts=2, created_at=created, policy=policy), RetryAt)
    assert isinstance(decide(error, attempts=3, created_at=created, policy=policy), GiveUp)


def test_message_already_older_than_max_age_gives_up() -> None:
    error = error_from_reply(451, "4.3.0 try later", SMTPStage.MAIL)
    assert isinstance(decide(error, created_at=NOW - timedelta(days=3)), GiveUp)


@pytest.mark.parametrize("attempts", [0, -1])
def test_decide_refuses_fewer_than_one_attempt(attempts: int) -> None:
    error = error_from_reply(451, "4.3.0 try later", SMTPStage.MAIL)
    with pytest.raises(ValueError, match="attempts"):
        decide(error, attempts=attempts)


# --- decide: possible duplicates ---------------------------------------------------------------


def test_line_lost_after_data_is_a_possible_duplicate() -> None:
    decision = decide(lost_during_data(possibly_delivered=True))
    assert isinstance(decision, RetryAt)
    assert decision.possible_duplicate
    assert decision.at == NOW + seconds(60)
    assert "may have delivered" in decision.reason


def test_timeout_after_data_is_a_possible_duplicate() -> None:
    error = DeliveryTimeoutError("no reply to the final dot", stage=SMTPStage.DATA)
    error.possibly_delivered = True
    decision = decide(error)
    assert isinstance(decision, RetryAt)
    assert decision.possible_duplicate


def test_possible_duplicate_still_counts_against_max_attempts() -> None:
    decision = decide(lost_during_data(possibly_delivered=True), attempts=3)
    assert isinstance(decision, GiveUp)
    assert decision.reason.startswith("gave up after 3 attempts")
    assert "may have delivered" in decision.reason


def test_possible_duplicate_giving_up_for_age_says_so() -> None:
    decision = decide(lost_during_data(possibly_delivered=True), created_at=NOW - timedelta(days=5))
    assert isinstance(decision, GiveUp)
    assert "may have delivered" in decision.reason


def _unflagged_data_error() -> ConnectionLostError:
    # Not set by the transport: the default means "not delivered".
    return ConnectionLostError("x", stage=SMTPStage.DATA)


def _timeout_before_data() -> DeliveryTimeoutError:
    error = DeliveryTimeoutError("x", stage=SMTPStage.RCPT)
    error.possibly_delivered = True
    return error


def _plain_transient_at_data() -> TransientError:
    error = error_from_reply(451, "4.3.0 try later", SMTPStage.DATA)
    error.possibly_delivered = True
    assert isinstance(error, TransientError)
    return error


@pytest.mark.parametrize(
    "make",
    [
        lambda: lost_during_data(possibly_delivered=False),
        _unflagged_data_error,
        _timeout_before_data,
        _plain_transient_at_data,
    ],
    ids=["flag-false", "flag-absent", "not-at-data", "reply-not-lost-line"],
)
def test_other_transient_failures_are_not_duplicates(make: Callable[[], DeliveryError]) -> None:
    decision = decide(make())
    assert isinstance(decision, RetryAt)
    assert not decision.possible_duplicate
    assert "may have delivered" not in decision.reason


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", -3),
        ("max_age", timedelta(0)),
        ("base_delay", timedelta(0)),
        ("base_delay", seconds(-1)),
        ("max_delay", timedelta(0)),
        ("pause_base", seconds(-30)),
        ("pause_max", timedelta(0)),
        ("jitter", -0.1),
        ("jitter", 1.0),
        ("jitter", float("nan")),
        ("factor", 0.5),
        ("factor", float("nan")),
    ],
)
def test_invalid_policies_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_default_policy_is_valid_and_frozen() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    with pytest.raises(AttributeError):
        policy.max_attempts = 5  # type: ignore[misc]

"""The login throttle: 5 failures per name from one address, 20 per address, 50 per name in
15 minutes, then a wait until the oldest counted failure leaves the window. An attempt is
counted when it starts; a success gives it back and forgets the name's failures."""

from __future__ import annotations

import threading

from mailroom.web.admin.throttle import (
    IP_LIMIT,
    USER_FROM_IP_LIMIT,
    USER_LIMIT,
    WINDOW,
    LoginThrottle,
)

T0 = 1_800_000_000.0


def test_the_fifth_failure_for_a_name_from_an_address_makes_it_wait() -> None:
    throttle = LoginThrottle()
    for i in range(USER_FROM_IP_LIMIT - 1):
        assert throttle.attempt("ada", "10.0.0.1", T0 + i) == 0
    assert throttle.attempt("ADA ", "10.0.0.1", T0 + 10) == 0  # one name, however typed
    assert throttle.attempt("ada", "10.0.0.1", T0 + 10) == WINDOW - 10
    assert throttle.attempt("grace", "10.0.0.1", T0 + 10) == 0
    assert throttle.attempt("ada", "10.0.0.1", T0 + WINDOW) == 0  # the first failure left


def test_another_address_may_still_try_the_name() -> None:
    throttle = LoginThrottle()
    for _ in range(USER_FROM_IP_LIMIT):
        throttle.attempt("ada", "10.0.0.1", T0)
    assert throttle.attempt("ada", "10.0.0.1", T0 + 1) > 0
    assert throttle.attempt("ada", "10.0.0.2", T0 + 1) == 0


def test_fifty_failures_for_a_name_from_anywhere_make_it_wait_everywhere() -> None:
    throttle = LoginThrottle()
    for i in range(USER_LIMIT):
        assert throttle.attempt("ada", f"10.0.{i}.1", T0) == 0
    assert throttle.attempt("ada", "10.9.9.9", T0 + 1) == WINDOW - 1
    assert throttle.attempt("grace", "10.9.9.9", T0 + 1) == 0


def test_twenty_failures_from_one_address_make_it_wait() -> None:
    throttle = LoginThrottle()
    for i in range(IP_LIMIT):
        throttle.attempt(f"user{i}", "10.0.0.9", T0)
    assert throttle.attempt("someone", "10.0.0.9", T0 + 1) == WINDOW - 1
    assert throttle.attempt("someone", "10.0.0.8", T0 + 1) == 0


def test_parallel_attempts_are_counted_before_any_answer() -> None:
    throttle = LoginThrottle()
    start = threading.Barrier(20)
    waits: list[float] = []

    def try_once() -> None:
        start.wait()
        waits.append(throttle.attempt("ada", "10.0.0.1", T0))

    threads = [threading.Thread(target=try_once) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [0.0] * USER_FROM_IP_LIMIT + [WINDOW] * (20 - USER_FROM_IP_LIMIT)


def test_a_success_forgets_the_names_failures_but_not_the_addresses() -> None:
    throttle = LoginThrottle()
    for _ in range(USER_FROM_IP_LIMIT - 1):
        throttle.attempt("ada", "10.0.0.1", T0)
    assert throttle.attempt("ada", "10.0.0.1", T0 + 1) == 0
    throttle.succeeded("ada", "10.0.0.1", T0 + 1)
    for _ in range(USER_FROM_IP_LIMIT):
        assert throttle.attempt("ada", "10.0.0.1", T0 + 2) == 0
    throttle.succeeded("ada", "10.0.0.1", T0 + 2)
    # The address kept the 4 + 4 failures; the two successes were given back.
    for i in range(IP_LIMIT - 2 * (USER_FROM_IP_LIMIT - 1)):
        assert throttle.attempt(f"other{i}", "10.0.0.1", T0 + 3) == 0
    assert throttle.attempt("ada", "10.0.0.1", T0 + 3) > 0

"""The login throttle: 5 failures per name or 20 per address in 15 minutes, then a wait
until the oldest counted failure leaves the window; a success forgets the name's."""

from __future__ import annotations

from mailroom.web.admin.throttle import IP_LIMIT, USER_LIMIT, WINDOW, LoginThrottle

T0 = 1_800_000_000.0


def test_the_fifth_failure_for_a_name_makes_it_wait() -> None:
    throttle = LoginThrottle()
    for i in range(USER_LIMIT - 1):
        throttle.failed("ada", "10.0.0.1", T0 + i)
        assert throttle.wait("ada", "10.0.0.1", T0 + i) == 0
    throttle.failed("ADA ", "10.0.0.2", T0 + 10)  # one name, however it is typed
    assert throttle.wait("ada", "10.0.0.3", T0 + 10) == WINDOW - 10
    assert throttle.wait("grace", "10.0.0.3", T0 + 10) == 0
    assert throttle.wait("ada", "10.0.0.3", T0 + WINDOW) == 0  # the first failure left


def test_twenty_failures_from_one_address_make_it_wait() -> None:
    throttle = LoginThrottle()
    for i in range(IP_LIMIT):
        throttle.failed(f"user{i}", "10.0.0.9", T0)
    assert throttle.wait("someone", "10.0.0.9", T0 + 1) == WINDOW - 1
    assert throttle.wait("someone", "10.0.0.8", T0 + 1) == 0


def test_a_success_forgets_the_names_failures_but_not_the_addresses() -> None:
    throttle = LoginThrottle()
    for _ in range(USER_LIMIT):
        throttle.failed("ada", "10.0.0.1", T0)
    throttle.succeeded("ada")
    assert throttle.wait("ada", "10.0.0.7", T0) == 0
    for i in range(IP_LIMIT - USER_LIMIT):
        throttle.failed(f"other{i}", "10.0.0.1", T0)
    assert throttle.wait("ada", "10.0.0.1", T0) > 0
